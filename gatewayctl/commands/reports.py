"""gatewayctl models list and usage: read-only views of the gateway (usage tail lives in tail.py)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from gatewayctl import humanize
from gatewayctl.options import Ids, Json, OptionalProject, Token, Url, admin, group
from gatewayctl.output import emit_json, note, table
from gatewayctl.table import Column
from gatewayctl.timeparse import since_ms

models_app = group("Models the gateway serves.")
usage_app = typer.Typer(
    help="Requests, tokens and cost: totals over a period, or live.",
    invoke_without_command=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


class UsageGroup(StrEnum):
    model = "model"
    key = "key"
    project = "project"
    day = "day"


@models_app.command("list")
def models_list(json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """List public models.

    With their prices (per 1M tokens), targets and capabilities.
    """
    client = admin(url, token)
    data = client.get("/models")["data"]
    if json_out:
        emit_json(data)
        return
    cards = [m.get("price_micro_per_1m") or {} for m in data]
    inputs = humanize.money_column([c.get("input", 0) for c in cards], client.currency)
    outputs = humanize.money_column([c.get("output", 0) for c in cards], client.currency)
    rows = [
        {
            "model": m["id"],
            "input": i,
            "output": o,
            "targets": ", ".join(m["targets"]),
            "capabilities": ", ".join(m["capabilities"]),
        }
        for m, i, o in zip(data, inputs, outputs, strict=True)
    ]
    columns = [
        Column("model", "MODEL"),
        Column("input", "INPUT/1M", align="right"),
        Column("output", "OUTPUT/1M", align="right"),
        Column("targets", "TARGETS", elide=True),
        Column("capabilities", "CAPABILITIES", elide=True),
    ]
    table(columns, rows, empty="no models configured")


def _usage_label(row: dict[str, Any], by: str) -> dict[str, str]:
    if by == "key":
        return {"key": row.get("key_name") or f"{row.get('key_prefix') or row['key']}…", "project": row["project_name"]}
    if by == "project":
        return {"project": row.get("project_name") or row["project"]}
    return {by: str(row[by])}


@usage_app.callback()
def usage(
    ctx: typer.Context,
    since: Annotated[str, typer.Option("--since", help="30m, 24h, 7d or an ISO date.")] = "24h",
    by: Annotated[UsageGroup, typer.Option("--by", help="Group by model, key, project or day.")] = UsageGroup.model,
    project: OptionalProject = None,
    ids: Ids = False,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Requests, tokens and cost over a period.

    Totals since a time, grouped by model (or key, project, day). `gatewayctl usage tail` follows
    requests live.
    """
    if ctx.invoked_subcommand is not None:
        return
    from server.money import format_credits

    client = admin(url, token)
    result = client.get("/usage", since_ms=since_ms(since), by=by.value, project=project)
    rows = result["data"]
    for row in rows:
        row["cost"] = format_credits(row["cost_micro"] or 0)
    if json_out:
        emit_json(result)
        return
    costs = humanize.money_column([r["cost_micro"] or 0 for r in rows], client.currency)
    shown = [
        {
            "id": str(r.get(by.value) if by in (UsageGroup.key, UsageGroup.project) else ""),
            **_usage_label(r, by.value),
            "requests": humanize.count(r["requests"]),
            "input": humanize.count(r["input_tokens"] or 0),
            "output": humanize.count(r["output_tokens"] or 0),
            "cached": humanize.count(r["cached_tokens"] or 0),
            "cost": cost,
        }
        for r, cost in zip(rows, costs, strict=True)
    ]
    label = {"key": "KEY", "project": "PROJECT", "model": "MODEL", "day": "DAY (UTC)"}[by.value]
    columns = [
        *([Column("id", "ID")] if ids and by in (UsageGroup.key, UsageGroup.project) else []),
        Column(by.value, label, elide=by == UsageGroup.key),  # a key's name is a label; ids stay whole
        *([Column("project", "PROJECT")] if by == UsageGroup.key else []),
        Column("requests", "REQUESTS", align="right"),
        Column("input", "INPUT TOK", align="right"),
        Column("output", "OUTPUT TOK", align="right"),
        Column("cached", "CACHED", align="right"),
        Column("cost", "COST", align="right"),
    ]
    note(f"usage since {humanize.local_time(result['since_ms'])} by {by.value}")
    table(columns, shown, empty="no usage in that period")
