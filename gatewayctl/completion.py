"""Shell completion for values that live on the server: project names, key ids, model names.

Asked of the server with a 1 s timeout and the same --url/--token resolution as commands; when it
cannot be reached (or no token is available) completion offers nothing rather than failing.
"""

from __future__ import annotations

from typing import Any

import typer


def _fetch(ctx: typer.Context, path: str) -> list[dict[str, Any]]:
    from gatewayctl.client import AdminClient
    from gatewayctl.credentials import admin_token, server_url

    try:
        url = server_url(ctx.params.get("url"))
        client = AdminClient(url, admin_token(ctx.params.get("token"), url), timeout=1.0)
        return list(client.get(path)["data"])
    except Exception:  # completion must never print a traceback into the user's shell
        return []


def projects(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    found = _fetch(ctx, "/projects")
    return [(p["name"], p.get("billing") or "") for p in found if p["name"].startswith(incomplete)]


def keys(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    found = _fetch(ctx, "/keys")
    return [
        (k["id"], f"{k.get('name') or k['prefix']} ({k.get('project_name') or k['project_id']})")
        for k in found
        if k["id"].startswith(incomplete)
    ]


def models(ctx: typer.Context, incomplete: str) -> list[str]:
    return [m["id"] for m in _fetch(ctx, "/models") if m["id"].startswith(incomplete)]
