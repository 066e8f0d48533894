"""Options shared by every command, declared once, the sub-app factory, and the admin client they lead to."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from gatewayctl.client import AdminClient
from gatewayctl.completion import keys as complete_keys
from gatewayctl.completion import projects as complete_projects
from gatewayctl.credentials import admin_token, server_url

Json = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output (errors too).")]
Ids = Annotated[bool, typer.Option("--ids", help="Show ids beside names.")]
Url = Annotated[str | None, typer.Option("--url", help="Gateway URL (default: GATEWAY_URL, else config.toml).")]
Token = Annotated[
    str | None, typer.Option("--token", help="Admin token (default: GATEWAY_ADMIN_TOKEN, else the keyring).")
]
Config = Annotated[
    Path | None, typer.Option("--config", help="config.toml to read (default: GATEWAY_CONFIG or ./config.toml).")
]
Project = Annotated[str, typer.Option("--project", help="Project name or id.", autocompletion=complete_projects)]
OptionalProject = Annotated[
    str | None, typer.Option("--project", help="Project name or id.", autocompletion=complete_projects)
]
ProjectName = Annotated[str, typer.Argument(help="Project name or id.", autocompletion=complete_projects)]
KeyId = Annotated[str, typer.Argument(help="Key id (key_…).", autocompletion=complete_keys)]


def group(help_text: str) -> typer.Typer:
    """A sub-app (one noun): plain help (no boxes), help when called bare (a usage error: exit 2)."""
    return typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False)


def amount(*, negative: bool = False, zero: bool = True) -> Callable[[str], int]:
    """An option parser: currency units as typed -> micro-units; refusals are usage errors (exit 2)."""

    def parse(text: str) -> int:
        from server.money import parse_amount

        try:
            return parse_amount(text, negative=negative, zero=zero)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None

    return parse


def admin(url: str | None, token: str | None) -> AdminClient:
    base = server_url(url)
    return AdminClient(base, admin_token(token, base))
