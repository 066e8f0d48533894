"""gatewayctl keys create|list|show|revoke"""

from __future__ import annotations

from typing import Annotated

import typer

from gatewayctl.options import Json, Token, Url, admin
from gatewayctl.output import console, emit_json, fields, table

app = typer.Typer(help="API keys: shown once at creation, stored only as a hash.", no_args_is_help=True)
COLUMNS = ("id", "project_id", "name", "prefix", "status")


@app.command("create")
def create(
    project: Annotated[str, typer.Option("--project", help="Project name or id.")],
    name: Annotated[str | None, typer.Option("--name", help="A label for the key.")] = None,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Create a key and print it (the only time it is shown)."""
    key = admin(url, token).post("/keys", {"project": project, "name": name})
    if json_out:
        emit_json(key)
        return
    console.print(key["key"])
    console.print(f"[dim]id {key['id']} - store it now; it cannot be shown again[/dim]")


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
    """Show one key."""
    key = admin(url, token).get(f"/keys/{key_id}")
    emit_json(key) if json_out else fields(key)


@app.command("revoke")
def revoke(key_id: str, json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """Revoke a key; the next request with it is refused."""
    key = admin(url, token).post(f"/keys/{key_id}/revoke")
    emit_json(key) if json_out else console.print(f"revoked {key['id']}")
