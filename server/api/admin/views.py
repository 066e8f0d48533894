"""What admins see: snapshot entries and store rows with the names people use beside the ids
(project names on keys, key names and prefixes on usage and requests), read from the in-memory
snapshot, never the database. Ids always stay in the answer; the CLI decides what to show."""

from __future__ import annotations

from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from server.gateway import Gateway
from server.snapshot import KeyEntry

CURRENCY_HEADER = b"x-gateway-currency"


def project_name(gw: Gateway, project_id: str | None) -> str | None:
    project = gw.snapshot.projects_by_id.get(project_id or "")
    return project.name if project else None


def key_view(gw: Gateway, key: KeyEntry) -> dict[str, Any]:
    return {**key.public(), "project_name": project_name(gw, key.project_id)}


def with_key_names(gw: Gateway, row: dict[str, Any], key_field: str = "key_id") -> dict[str, Any]:
    """A usage or request row plus the name and prefix of its key and the name of its project."""
    key = gw.snapshot.keys_by_id.get(row.get(key_field) or "")
    project_id = row.get("project_id") or (key.project_id if key else None)
    return {
        **row,
        "key_name": key.name if key else None,
        "key_prefix": key.prefix if key else None,
        "project_id": project_id,
        "project_name": project_name(gw, project_id),
    }


def usage_rows(gw: Gateway, rows: list[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    if by == "key":
        return [with_key_names(gw, row, "key") for row in rows]
    if by == "project":
        return [{**row, "project_name": project_name(gw, row["project"])} for row in rows]
    return rows


def currency_header(app: ASGIApp) -> ASGIApp:
    """Every admin answer names the gateway's currency, so the CLI can show amounts with it."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        gw: Gateway = scope["app"].state.gateway
        currency = gw.settings.billing.currency.encode()

        async def send_with_currency(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (CURRENCY_HEADER, currency)]
            await send(message)

        await app(scope, receive, send_with_currency)

    return middleware
