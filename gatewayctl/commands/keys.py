"""gatewayctl keys create|list|show|rotate|revoke"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from gatewayctl.options import Json, Token, Url, admin
from gatewayctl.output import console, emit_json, fields, table
from gatewayctl.timeparse import span_seconds, until_ms

app = typer.Typer(help="API keys: shown once at creation, stored only as a hash.", no_args_is_help=True)
COLUMNS = ("id", "project_id", "name", "prefix", "status")


def _list(values: list[str] | None) -> list[str] | None:
    """Repeatable options that also accept comma-separated values."""
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _print_secret(key: dict[str, Any], json_out: bool) -> None:
    if json_out:
        emit_json(key)
        return
    console.print(key["key"])
    console.print(f"[dim]id {key['id']} - store it now; it cannot be shown again[/dim]")


@app.command("create")
def create(
    project: Annotated[str, typer.Option("--project", help="Project name or id.")],
    name: Annotated[str | None, typer.Option("--name", help="A label for the key.")] = None,
    models: Annotated[
        list[str] | None, typer.Option("--models", help="Allowed models; exact or gpt-4o* (repeat or comma).")
    ] = None,
    endpoints: Annotated[
        list[str] | None,
        typer.Option("--endpoints", help="Allowed endpoint classes: chat, embeddings, images, audio, files, realtime."),
    ] = None,
    ip: Annotated[list[str] | None, typer.Option("--ip", help="Allowed client CIDRs, e.g. 10.0.0.0/8.")] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="Expiry: a span (30d) or a date (2026-12-31).")
    ] = None,
    rpm: Annotated[int | None, typer.Option("--rpm", help="Requests per minute for this key.")] = None,
    tpm: Annotated[int | None, typer.Option("--tpm", help="Tokens per minute for this key.")] = None,
    monthly_budget: Annotated[
        str | None, typer.Option("--monthly-budget", help="Monthly budget in currency units.")
    ] = None,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Create a key and print it (the only time it is shown)."""
    body = {
        "project": project,
        "name": name,
        "models": _list(models),
        "endpoints": _list(endpoints),
        "ips": _list(ip),
        "rpm": rpm,
        "tpm": tpm,
        "monthly_budget": monthly_budget,
        "expires_ms": until_ms(expires) if expires else None,
    }
    _print_secret(admin(url, token).post("/keys", body), json_out)


@app.command("list")
def list_(
    project: Annotated[str | None, typer.Option("--project", help="Only this project's keys.")] = None,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """List keys (prefixes only)."""
    data = admin(url, token).get("/keys", project=project)["data"]
    emit_json(data) if json_out else table(data, COLUMNS)


@app.command("show")
def show(key_id: str, json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """Show one key with its scopes."""
    key = admin(url, token).get(f"/keys/{key_id}")
    emit_json(key) if json_out else fields(key)


@app.command("rotate")
def rotate(
    key_id: str,
    grace: Annotated[str | None, typer.Option("--grace", help="Keep the old secret valid this long, e.g. 1h.")] = None,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """New secret, same id and scopes; the old secret is refused at once (or after --grace)."""
    grace_seconds = span_seconds(grace, "--grace") if grace else 0
    _print_secret(admin(url, token).post(f"/keys/{key_id}/rotate", {"grace_seconds": grace_seconds}), json_out)


@app.command("revoke")
def revoke(key_id: str, json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """Revoke a key; the next request with it is refused."""
    key = admin(url, token).post(f"/keys/{key_id}/revoke")
    emit_json(key) if json_out else console.print(f"revoked {key['id']}")
