"""gatewayctl requests list|show and gatewayctl replay: the request log as support reads it."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from gatewayctl import humanize
from gatewayctl.options import Json, OptionalProject, Token, Url, admin, group
from gatewayctl.output import emit_json, fields, note, say, table
from gatewayctl.table import Column
from gatewayctl.timeparse import since_ms

requests_app = group("The request log.")


class Status(StrEnum):
    ok = "ok"
    failed = "failed"
    error = "error"
    upstream_failed = "upstream_failed"
    client_disconnected = "client_disconnected"
    interrupted = "interrupted"
    pending = "pending"


KeyFilter = Annotated[str | None, typer.Option("--key", help="Key id or prefix (gw_live_AbCd…).")]
ModelFilter = Annotated[str | None, typer.Option("--model", help="Public model name.")]
StatusFilter = Annotated[
    Status | None, typer.Option("--status", help="A request status, or 'failed' for any that did not end ok.")
]


def tokens_text(row: dict[str, Any]) -> str:
    if row.get("input_tokens") is None:
        return ""
    return f"{row['input_tokens']:,}/{row['output_tokens']:,}"


def short_time(ms: int) -> str:
    """HH:MM:SS today, MM-DD HH:MM before: a log's times in few columns."""
    stamp = humanize.local_time(ms, seconds=True)
    today = humanize.local_time(humanize.now_ms())[:10]
    return stamp[11:19] if stamp[:10] == today else stamp[5:16]


def key_label(row: dict[str, Any]) -> str:
    return str(row.get("key_name") or (f"{row['key_prefix']}…" if row.get("key_prefix") else row.get("key_id") or ""))


@requests_app.command("list")
def requests_list(
    project: OptionalProject = None,
    key: KeyFilter = None,
    model: ModelFilter = None,
    status: StatusFilter = None,
    since: Annotated[str | None, typer.Option("--since", help="30m, 24h, 7d or an ISO date.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most this many, newest first.")] = 50,
    ids: Annotated[
        bool, typer.Option("--ids", help="Whole request ids (the table shows their first 8 characters).")
    ] = False,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """List recent requests, newest first.

    With their project, key, model, status, tokens (in/out), cost and latency; filter by project, key,
    model, status or time. Show one with `gatewayctl requests show ID` (the short id shown is enough).
    """
    client = admin(url, token)
    params = {
        "project": project,
        "key": key,
        "model": model,
        "status": status.value if status else None,
        "since_ms": since_ms(since) if since else None,
        "limit": limit,
    }
    rows = client.get("/requests", **params)["data"]
    if json_out:
        emit_json(rows)
        return
    costs = humanize.money_column([r.get("cost_micro") for r in rows], client.currency)
    shown = [
        {
            "time": short_time(r["started_ms"]),
            "id": r["id"] if ids else r["id"][:8],
            "project": r.get("project_name") or r["project_id"],
            "key": key_label(r),
            "model": r["model"] + (" (replay)" if r.get("replay_of") else ""),
            "status": r["status"] if r["status"] == "ok" else f"{r['status']} {r.get('http_status') or ''}".strip(),
            "tokens": tokens_text(r),
            "cost": cost,
            "latency": f"{r['ended_ms'] - r['started_ms']:,} ms" if r.get("ended_ms") else "",
        }
        for r, cost in zip(rows, costs, strict=True)
    ]
    columns = [
        Column("time", "TIME"),
        Column("id", "REQUEST"),
        *([] if project else [Column("project", "PROJECT", elide=True)]),  # a filtered column says nothing
        Column("key", "KEY", elide=True),
        *([] if model else [Column("model", "MODEL", elide=True)]),
        Column("status", "STATUS"),
        Column("tokens", "IN/OUT", align="right"),
        Column("cost", "COST", align="right"),
        Column("latency", "LATENCY", align="right"),
    ]
    table(columns, shown, empty="no requests match")
    if len(rows) == limit:
        note(f"the newest {limit} shown; --limit shows more, --since narrows")


def _attempt_lines(attempts: list[dict[str, Any]]) -> list[str]:
    return [f"{a['target']}: {a['status']} in {a['latency_ms']} ms" for a in attempts] or ["none"]


def _body_lines(body: Any, truncated: bool) -> list[str]:
    import json

    if body is None:
        return ["none"]
    text = body if isinstance(body, str) else json.dumps(body, indent=2, ensure_ascii=False)
    lines = text.splitlines() or [""]
    return [*lines, "… (cut at [logging] max_body_bytes)"] if truncated else lines


def _quantity_lines(quantities: dict[str, int]) -> list[str]:
    """Units beyond tokens, one per line: '2 images:1024x1024/hd', '5,375 stored_bytes'."""
    return [f"{amount:,} {unit}" for unit, amount in sorted(quantities.items())]


def _show_request(row: dict[str, Any], currency: str) -> None:
    started, ended = row.get("started_ms"), row.get("ended_ms")
    tokens = "n/a"
    if row.get("input_tokens") is not None:
        tokens = f"{row['input_tokens']:,} in, {row['output_tokens']:,} out, {row['cached_tokens'] or 0:,} cached" + (
            " (estimated)" if row.get("estimated") else ""
        )
    served = f"{row['provider']}:{row['upstream_model']}" if row.get("provider") else "not served"
    fields(
        [
            ("request", row["id"]),
            ("client request id", row.get("client_request_id") or "none"),
            *([("replay of", row["replay_of"])] if row.get("replay_of") else []),
            ("status", f"{row['status']} (HTTP {row.get('http_status') or '-'})"),
            *([("error", row["error_code"])] if row.get("error_code") else []),
            ("project", f"{row.get('project_name') or '?'} ({row['project_id']})"),
            ("key", f"{row.get('key_name') or row.get('key_prefix') or '?'} ({row['key_id']})"),
            ("endpoint", f"{row['endpoint']}{' (stream)' if row.get('stream') else ''}"),
            ("model", f"{row['model']} -> {served}"),
            *([("cache", row["cache_status"])] if row.get("cache_status") else []),
            ("started", humanize.moment(started)),
            ("took", f"{ended - started:,} ms" if started and ended else "unfinished"),
            ("tokens", tokens),
            *([("metered", _quantity_lines(row["quantities"]))] if row.get("quantities") else []),
            ("cost", humanize.money(row.get("cost_micro"), currency) or "none"),
            ("attempts", _attempt_lines(row.get("attempts") or [])),
        ]
    )
    if row.get("responses") is not None:
        _show_responses(row["responses"], currency)
    if "bodies" not in row:
        return
    bodies = row["bodies"]
    if bodies is None:
        fields([("bodies", f"not stored: {row.get('bodies_missing') or 'unknown'}")])
        return
    answer_label = "response (assembled from the stream)" if row.get("stream") else "response"
    fields(
        [
            ("request body", _body_lines(bodies["request"], bodies["request_truncated"])),
            (answer_label, _body_lines(bodies["response"], bodies["response_truncated"])),
        ]
    )


def _show_responses(responses: list[dict[str, Any]], currency: str) -> None:
    """A realtime session's responses: one line each, with its usage and cost (the session itself has none)."""
    say()
    total = sum(r.get("cost_micro") or 0 for r in responses)
    fields([("responses", f"{len(responses)}, {humanize.money(total, currency) or 'no cost'} in all")])
    costs = humanize.money_column([r.get("cost_micro") for r in responses], currency)
    shown = [
        {
            "time": short_time(r["started_ms"]),
            "id": r["id"],
            "status": r["status"] if r["status"] == "ok" else f"{r['status']} {r.get('error_code') or ''}".strip(),
            "tokens": tokens_text(r) + (" est." if r.get("estimated") else ""),
            "cost": cost,
        }
        for r, cost in zip(responses, costs, strict=True)
    ]
    columns = [
        Column("time", "TIME"),
        Column("id", "RESPONSE"),
        Column("status", "STATUS", elide=True),
        Column("tokens", "IN/OUT", align="right"),
        Column("cost", "COST", align="right"),
    ]
    table(columns, shown, empty="no responses")


@requests_app.command("show")
def requests_show(
    request_id: Annotated[str, typer.Argument(help="The gateway's request id or the client's x-request-id.")],
    bodies: Annotated[
        bool, typer.Option("--bodies/--no-bodies", help="Show the stored request and response bodies.")
    ] = True,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Show a request.

    By gateway id or the client's x-request-id: its usage, cost, attempts and the stored request and
    response bodies (secrets redacted; a stream's response is its assembled answer).

    A client may reuse its x-request-id: then every request carrying it is listed, newest first
    (with --json: the newest, and `match_ids` naming them all). A realtime session (its id is the
    x-request-id of its upgrade) lists its responses, each with its usage and cost.
    """
    from server.money import format_credits

    client = admin(url, token)
    row = client.get(f"/requests/{request_id}", bodies=str(bodies).lower())
    if row.get("cost_micro") is not None:
        row["cost"] = format_credits(row["cost_micro"])
    if json_out:
        emit_json(row)
        return
    others = [i for i in row.get("match_ids") or [] if i != row["id"]]
    if others:
        note(
            f"{len(others) + 1} requests match {request_id}; all are shown, newest first."
            " Show one: gatewayctl requests show <request>"
        )
    _show_request(row, client.currency)
    for other in others:
        say()
        _show_request(client.get(f"/requests/{other}", bodies=str(bodies).lower()), client.currency)


def _answer_lines(side: dict[str, Any]) -> list[str]:
    """An answer's text, then its tool calls one per line: what the diff compares."""
    answer = side.get("answer") or {}
    lines = (answer.get("text") or "").splitlines()
    lines += [f"tool call {call['name']}({call['arguments']})" for call in answer.get("tool_calls") or []]
    if side.get("error"):
        lines.append(f"error {side['error'].get('code') or side['error'].get('type')}: {side['error']['message']}")
    return lines


def _served_by(side: dict[str, Any]) -> str:
    return f"{side['provider']}:{side['upstream_model']}" if side.get("provider") else "-"


def replay(
    request_id: Annotated[str, typer.Argument(help="The gateway's request id or the client's x-request-id.")],
    model: Annotated[str | None, typer.Option("--model", help="Send it to this public model instead.")] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="Send it to one upstream, as provider:model (priced as before).")
    ] = None,
    project: OptionalProject = None,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Send a logged request again and compare the answers.

    The stored body goes through the normal path: the key's scopes and limits, the budget and the
    wallet apply, and the replay is metered and logged (its row names the original in replay_of). It is
    billed to the original project, or with --project to another one (as the operator). Prints a unified
    diff of the answer text and tool calls, and the two requests side by side.
    """
    import difflib

    from gatewayctl.errors import CliError

    if model and target:
        raise CliError("--model and --target: give one or the other", 2)
    client = admin(url, token)
    result = client.post(f"/requests/{request_id}/replay", {"model": model, "target": target, "project": project})
    if json_out:
        emit_json(result)
        return
    before, after = result["original"], result["replay"]
    diff = list(
        difflib.unified_diff(
            _answer_lines(before),
            _answer_lines(after),
            f"original {before['id']}",
            f"replay {after['id']}",
            lineterm="",
        )
    )
    for line in diff or ["(the answers are the same)"]:
        say(line)
    say()
    costs = humanize.money_column([before.get("cost_micro"), after.get("cost_micro")], client.currency)
    rows = [
        ("model", before["model"], after["model"]),
        (
            "served by",
            *(f"{s['provider']}:{s['upstream_model']}" if s.get("provider") else "-" for s in (before, after)),
        ),
        ("status", *(s["status"] for s in (before, after))),
        ("input tokens", *(humanize.count(s.get("input_tokens")) for s in (before, after))),
        ("output tokens", *(humanize.count(s.get("output_tokens")) for s in (before, after))),
        ("cost", *costs),
        ("latency", *(f"{s['latency_ms']:,} ms" if s.get("latency_ms") is not None else "" for s in (before, after))),
        ("finish reason", *(str((s.get("answer") or {}).get("finish_reason") or "") for s in (before, after))),
    ]
    columns = [Column("what", ""), Column("original", "ORIGINAL"), Column("replay", "REPLAY")]
    table(columns, [{"what": w, "original": o, "replay": r} for w, o, r in rows])
    if after.get("error"):
        note(f"the replay failed: {after['error']['message']}")
