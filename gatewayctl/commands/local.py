"""init and serve: the only commands that touch local files instead of the admin API."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Annotated

import typer

from gatewayctl.credentials import keyring_problem, store_token
from gatewayctl.errors import CliError
from gatewayctl.options import Config, Json
from gatewayctl.output import console, emit_json
from server.clock import now_ms
from server.keys import ADMIN_PREFIX, display_prefix, hash_secret, new_id, new_secret
from server.settings import ConfigError, Settings, load_settings


def example_config() -> Path:
    """The example config: beside the packages in a checkout, inside the package in a wheel."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here.parent / "config.example.toml", here / "config.example.toml"):
        if candidate.is_file():
            return candidate
    raise CliError("config.example.toml is missing from this installation")


def _settings(path: Path | None) -> Settings:
    try:
        return load_settings(path)
    except ConfigError as exc:
        raise CliError(str(exc), 2) from None


def init(
    directory: Annotated[Path, typer.Option("--dir", help="Folder for config.toml and the data folder.")] = Path("."),
    new_token: Annotated[bool, typer.Option("--new-token", help="Create another admin token.")] = False,
    json_out: Json = False,
) -> None:
    """Write DIR/config.toml (from the example, if absent), create the database and an admin token."""
    from server.store.sqlite.store import add_admin_token, has_admin_token, prepare

    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "config.toml"
    created_config = not config.exists()
    if created_config:
        shutil.copyfile(example_config(), config)
    settings = _settings(config)
    if settings.server.workers != 1:
        raise CliError("server.workers must be 1: limits and reservations live in one process", 2)
    db = settings.database_path
    had_token = has_admin_token(db)
    prepare(db)
    url = f"http://{settings.server.host}:{settings.server.port}"
    result: dict[str, object] = {"config": str(config.resolve()), "database": str(db.resolve()), "url": url}
    token = None
    if new_token or not had_token:
        token = new_secret(ADMIN_PREFIX)
        add_admin_token(db, new_id("adm"), hash_secret(token), display_prefix(token), now_ms())
    stored = bool(token) and store_token(url, token or "")
    result.update(admin_token=token, keyring=stored)
    if json_out:
        emit_json(result)
        return
    console.print(f"config: {result['config']}{' (created)' if created_config else ' (kept)'}")
    console.print(f"database: {result['database']}")
    if token is None:
        console.print("admin token: unchanged (use --new-token for another)")
    elif stored:
        console.print(f"admin token: stored in the keyring for {url}")
    else:
        console.print(f"admin token (shown once): {token}")
        console.print(
            f"  {keyring_problem() or 'keyring refused it'}: export GATEWAY_ADMIN_TOKEN=<token> or pass --token."
        )


def serve(
    config: Config = None,
    host: Annotated[str | None, typer.Option("--host", help="Override server.host.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Override server.port.")] = None,
) -> None:
    """Run the gateway in the foreground (one worker process)."""
    import os

    import uvicorn

    from server.app import create_asgi
    from server.http_guard import uvicorn_options

    chosen = config or (Path(os.environ["GATEWAY_CONFIG"]) if os.environ.get("GATEWAY_CONFIG") else None)
    if chosen is None and Path("config.toml").is_file():
        chosen = Path("config.toml")
    settings = _settings(chosen)
    for noisy in ("httpx", "httpx2"):  # one INFO line per upstream call is noise
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if settings.server.workers != 1:
        raise CliError("server.workers must be 1: limits and reservations live in one process", 2)
    uvicorn.run(
        create_asgi(settings),
        host=host or settings.server.host,
        port=port or settings.server.port,
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
        server_header=False,
        proxy_headers=False,  # X-Forwarded-For is honoured only from configured trusted proxies
        **uvicorn_options(settings),  # deadlines, header cap, connection cap, open-files limit
    )
