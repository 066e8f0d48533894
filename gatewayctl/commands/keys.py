"""gatewayctl keys create|list|show|rotate|revoke

A new secret goes alone to stdout (so `KEY=$(gatewayctl keys create …)` captures exactly it); the
advice around it goes to stderr.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from gatewayctl import humanize
from gatewayctl.completion import models as complete_models
from gatewayctl.options import Ids, Json, KeyId, OptionalProject, Project, Token, Url, admin, amount, group
from gatewayctl.output import emit_json, fields, note, say, table
from gatewayctl.table import Column
from gatewayctl.timeparse import span_seconds, until_ms

app = group("API keys: shown once at creation, stored only as a hash.")


def _list(values: list[str] | None) -> list[str] | None:
    """Repeatable options that also accept comma-separated values."""
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _print_secret(key: dict[str, Any], json_out: bool, what: str) -> None:
    if json_out:
        emit_json(key)
        return
    say(key["key"])
    project = key.get("project_name") or key["project_id"]
    note(f"{what} {key['id']} for project {project}: store the key now, it cannot be shown again")
    if key.get("prev_valid_until_ms"):
        note(f"the previous secret keeps working until {humanize.moment(key['prev_valid_until_ms'])}")


def _status(key: dict[str, Any], now: int) -> str:
    if key.get("revoked_ms") is not None:
        return "revoked"
    if key.get("expires_ms") is not None and key["expires_ms"] <= now:
        return "expired"
    return "active"


@app.command("create")
def create(
    project: Project,
    name: Annotated[str | None, typer.Option("--name", help="A label for the key.")] = None,
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--models", help="Allowed models; exact or gpt-4o* (repeat or comma).", autocompletion=complete_models
        ),
    ] = None,
    endpoints: Annotated[
        list[str] | None,
        typer.Option(
            "--endpoints",
            help="Allowed endpoint classes: chat, embeddings, images, audio, files, realtime, webhooks.",
        ),
    ] = None,
    ip: Annotated[list[str] | None, typer.Option("--ip", help="Allowed client CIDRs, e.g. 10.0.0.0/8.")] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="Expiry: a span (30d) or a date (2026-12-31).")
    ] = None,
    rpm: Annotated[int | None, typer.Option("--rpm", min=1, help="Requests per minute for this key.")] = None,
    tpm: Annotated[int | None, typer.Option("--tpm", min=1, help="Tokens per minute for this key.")] = None,
    monthly_budget: Annotated[
        int | None,
        typer.Option(
            "--monthly-budget", parser=amount(zero=False), metavar="AMOUNT", help="Monthly budget in currency units."
        ),
    ] = None,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Create a key and print it once.

    The key alone on stdout (KEY=$(gatewayctl keys create ...)); advice on stderr.
    """
    from server.money import format_credits

    body = {
        "project": project,
        "name": name,
        "models": _list(models),
        "endpoints": _list(endpoints),
        "ips": _list(ip),
        "rpm": rpm,
        "tpm": tpm,
        "monthly_budget": None if monthly_budget is None else format_credits(monthly_budget),
        "expires_ms": until_ms(expires) if expires else None,
    }
    _print_secret(admin(url, token).post("/keys", body), json_out, "created key")


@app.command("list")
def list_(
    project: OptionalProject = None,
    ids: Ids = False,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """List keys.

    By display prefix and name, with their project, status, last use and expiry; never secrets.
    """
    data = admin(url, token).get("/keys", project=project)["data"]
    if json_out:
        emit_json(data)
        return
    now = humanize.now_ms()
    rows = [
        {
            "id": k["id"],
            "name": k.get("name") or "",
            "prefix": f"{k['prefix']}…",
            "project": k.get("project_name") or k["project_id"],
            "status": _status(k, now),
            "last_used": humanize.relative(k.get("last_used_ms"), now) or "never",
            "expires": humanize.relative(k.get("expires_ms"), now) or "never",
        }
        for k in data
    ]
    columns = [
        *([Column("id", "ID")] if ids else []),
        Column("prefix", "KEY"),
        Column("name", "NAME", elide=True),
        Column("project", "PROJECT"),
        Column("status", "STATUS"),
        Column("last_used", "LAST USED", elide=True),
        Column("expires", "EXPIRES", elide=True),
    ]
    table(columns, rows, empty="no keys: gatewayctl keys create --project NAME")


@app.command("show")
def show(key_id: KeyId, json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """Show one key.

    Project, status, last use, expiry, the grace deadline after a rotation, and scopes.
    """
    client = admin(url, token)
    key = client.get(f"/keys/{key_id}")
    if json_out:
        emit_json(key)
        return
    now = humanize.now_ms()
    pairs: list[tuple[str, str | list[str]]] = [
        ("id", key["id"]),
        ("name", key.get("name") or "(none)"),
        ("key", f"{key['prefix']}… (prefix; the secret is never shown again)"),
        ("project", f"{key.get('project_name') or '?'} ({key['project_id']})"),
        ("status", _status(key, now)),
        ("created", humanize.moment(key.get("created_ms"), now)),
        ("last used", humanize.moment(key.get("last_used_ms"), now)),
        ("expires", humanize.moment(key["expires_ms"], now) if key.get("expires_ms") else "never"),
    ]
    if key.get("prev_valid_until_ms"):
        ended = key["prev_valid_until_ms"] <= now
        label = "previous secret ended" if ended else "previous secret valid until"
        pairs.append((label, humanize.moment(key["prev_valid_until_ms"], now)))
    if key.get("revoked_ms") is not None:
        pairs.append(("revoked", humanize.moment(key["revoked_ms"], now)))
    pairs.append(("scopes", humanize.scope_lines(key.get("scopes") or {}, client.currency)))
    fields(pairs)


@app.command("rotate")
def rotate(
    key_id: KeyId,
    grace: Annotated[str | None, typer.Option("--grace", help="Keep the old secret valid this long, e.g. 1h.")] = None,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Give a key a new secret.

    Same id and scopes; the old secret is refused at once (or after --grace).
    """
    grace_seconds = span_seconds(grace, "--grace") if grace else 0
    key = admin(url, token).post(f"/keys/{key_id}/rotate", {"grace_seconds": grace_seconds})
    _print_secret(key, json_out, "rotated key")


@app.command("revoke")
def revoke(key_id: KeyId, json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """Revoke a key; the next request with it is refused."""
    key = admin(url, token).post(f"/keys/{key_id}/revoke")
    if json_out:
        emit_json(key)
    else:
        say(f"revoked {key['id']} ({key.get('name') or key['prefix'] + '…'}, project {key.get('project_name')})")
