"""Options shared by every command, declared once, plus the admin client they lead to."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gatewayctl.client import AdminClient
from gatewayctl.credentials import admin_token, server_url

Json = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
Url = Annotated[str | None, typer.Option("--url", help="Gateway URL (default: GATEWAY_URL, else config.toml).")]
Token = Annotated[
    str | None, typer.Option("--token", help="Admin token (default: GATEWAY_ADMIN_TOKEN, else the keyring).")
]
Config = Annotated[
    Path | None, typer.Option("--config", help="config.toml to read (default: GATEWAY_CONFIG or ./config.toml).")
]


def admin(url: str | None, token: str | None) -> AdminClient:
    base = server_url(url)
    return AdminClient(base, admin_token(token, base))
