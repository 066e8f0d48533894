"""init and serve: the only commands that touch local files instead of the admin API.

Both run with umask 077: config.toml holds settings an attacker could use (and may be edited to hold
more), the data dir holds the database (key hashes, the admin token hash, the ledger, request logs),
so they are created 0600 and 0700. Both take the data dir's lock before the database is opened (a
second server, or an init beside a running one, refuses at once and touches nothing); `serve` binds
its socket before the app starts (a port in use fails before anything is opened), then says what it
serves.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gatewayctl.errors import CliError
from gatewayctl.options import Config, Json
from gatewayctl.output import emit_json, say

if TYPE_CHECKING:
    from server.settings import Settings

PRIVATE = 0o077


def example_config() -> Path:
    """The example config: beside the packages in a checkout, inside the package in a wheel."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here.parent / "config.example.toml", here / "config.example.toml"):
        if candidate.is_file():
            return candidate
    raise CliError("config.example.toml is missing from this installation")


def _settings(path: Path | None) -> Settings:
    from server.settings import ConfigError, load_settings

    try:
        return load_settings(path)  # server.workers > 1 without shared backends is refused here
    except ConfigError as exc:
        raise CliError(str(exc), 2) from None


def _check_workers(settings: Settings, workers: int) -> None:
    """More than one worker only with the store and the hot state shared (PostgreSQL and Redis)."""
    if workers > 1 and not (settings.store.shared and settings.state.shared):
        raise CliError(
            f"--workers {workers} needs [store] url (PostgreSQL) and [state] url (Redis): limits, reservations"
            " and the ledger must be shared by every process",
            2,
        )


def _private(path: Path, mode: int) -> None:
    """Tighten a file or folder we own to `mode` (an older version created them world-readable)."""
    if path.exists() and path.stat().st_uid == os.geteuid():
        path.chmod(mode)


def _lock(data_path: Path) -> Any:
    """The data dir's lock (server/datadir_lock.py), or a one-line refusal naming who holds it."""
    from server.datadir_lock import DataDirLocked, acquire

    try:
        return acquire(data_path)
    except DataDirLocked as exc:
        raise CliError(str(exc), code="data_dir_locked") from None
    except OSError as exc:
        raise CliError(f"cannot lock the data dir {data_path}: {exc.strerror or exc}") from None


def init(
    directory: Annotated[Path, typer.Option("--dir", help="Folder for config.toml and the data folder.")] = Path("."),
    new_token: Annotated[bool, typer.Option("--new-token", help="Create another admin token.")] = False,
    json_out: Json = False,
) -> None:
    """Create config.toml, the database, the ledger key and an admin token.

    Writes DIR/config.toml from the example (if absent), creates or migrates the database, creates the
    ledger's key next to the config (if absent) and an admin token (kept in the keyring where one works,
    else printed once).
    """
    from gatewayctl.credentials import keyring_problem, store_token
    from server.billing.ledger import open_chain
    from server.clock import now_ms
    from server.keys import ADMIN_PREFIX, display_prefix, hash_secret, new_id, new_secret
    from server.store.sqlite.store import add_admin_token, has_admin_token, prepare

    os.umask(PRIVATE)
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "config.toml"
    created_config = not config.exists()
    if created_config:
        shutil.copyfile(example_config(), config)
        config.chmod(0o600)
    settings = _settings(config)
    db = settings.database_path
    lock = _lock(settings.data_path)  # a running server would be told its in-flight requests were interrupted
    shared = _SharedStore(settings.store.url) if settings.store.shared else None
    try:
        had_token = shared.has_admin_token() if shared else has_admin_token(db)
        chain, rekey_from = open_chain(settings.ledger_key_path)  # the ledger's key, next to the config
        if shared is None:
            prepare(db, chain, rekey_from=rekey_from)
        _private(settings.data_path, 0o700)
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            _private(path, 0o600)
        token = None
        if new_token or not had_token:
            token = new_secret(ADMIN_PREFIX)
            row = (new_id("adm"), hash_secret(token), display_prefix(token), now_ms())
            if shared is not None:
                shared.add_admin_token(*row)
            else:
                add_admin_token(db, *row)
    finally:
        lock.release()
    url = f"http://{settings.server.host}:{settings.server.port}"
    where = shared.name if shared else str(db.resolve())
    result: dict[str, object] = {"config": str(config.resolve()), "database": where, "url": url}
    stored = bool(token) and store_token(url, token or "")
    result.update(admin_token=token, keyring=stored)
    if json_out:
        emit_json(result)
        return
    say(f"config: {result['config']}{' (created)' if created_config else ' (kept)'}")
    say(f"database: {result['database']}")
    if token is None:
        say("admin token: unchanged (use --new-token for another)")
    elif stored:
        say(f"admin token: stored in the keyring for {url}")
    else:
        say(f"admin token (shown once): {token}")
        say(f"  {keyring_problem() or 'keyring refused it'}: export GATEWAY_ADMIN_TOKEN=<token> or pass --token.")


class _SharedStore:
    """init's view of a PostgreSQL store ([store] url): the admin token is written there, not to SQLite;
    a database that cannot be reached is one line, not a traceback."""

    def __init__(self, url: str) -> None:
        from server.store.postgres.copy import safe_url

        self.url = url
        self.name = safe_url(url)

    def _run(self, what: str, *args: Any) -> Any:
        from server.store.postgres import store
        from server.store.protocol import StoreUnavailable

        try:
            return getattr(store, what)(self.url, *args)
        except StoreUnavailable as exc:
            raise CliError(str(exc)) from None

    def has_admin_token(self) -> bool:
        return bool(self._run("has_admin_token"))

    def add_admin_token(self, token_id: str, token_hash: str, prefix: str, when_ms: int) -> None:
        self._run("add_admin_token", token_id, token_hash, prefix, when_ms)


def _bind(host: str, port: int) -> Any:
    """The listening socket, bound before the app opens anything, so a port in use fails cleanly."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _banner(settings: Settings, config: Path | None, url: str) -> list[str]:
    providers = ", ".join(f"{p.name} ({p.kind}{', ' + p.base_url if p.base_url else ''})" for p in settings.providers)
    models = ", ".join(f"{m.name} -> {' | '.join(m.targets)}" for m in settings.models)
    access = "on ([server] access_log = false turns it off)" if settings.server.access_log else "off"
    return [
        f"gateway listening on {url}",
        f"config: {config.resolve() if config else 'none (defaults and GATEWAY_* environment)'}",
        f"database: {settings.database_path.resolve()} (synchronous={settings.storage.synchronous})",
        f"providers ({len(settings.providers)}): {providers or 'none'}",
        f"models ({len(settings.models)}): {models or 'none'}",
        f"access log: {access}",
    ]


def serve(
    config: Config = None,
    host: Annotated[str | None, typer.Option("--host", help="Override server.host.")] = None,
    port: Annotated[int | None, typer.Option("--port", min=1, max=65535, help="Override server.port.")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", min=1, help="Processes (server.workers); more than 1 needs [store] and [state] urls."
        ),
    ] = None,
) -> None:
    """Run the gateway in the foreground.

    One process by default; it refuses to start beside another on the same data; SIGHUP re-reads the
    config; SIGTERM drains (server.shutdown_grace_s) and exits 0. `--workers N` runs N processes on one
    socket under a supervisor (server/workers.py), allowed only when the store and the hot state are
    shared ([store] url and [state] url).
    """
    from server.workers import FD_ENV

    os.umask(PRIVATE)
    chosen = config or (Path(os.environ["GATEWAY_CONFIG"]) if os.environ.get("GATEWAY_CONFIG") else None)
    if chosen is None and Path("config.toml").is_file():
        chosen = Path("config.toml")
    settings = _settings(chosen)
    count = workers or settings.server.workers
    _check_workers(settings, count)
    if settings.store.shared:  # an unreachable PostgreSQL is one line here, not a failed startup's traceback
        _SharedStore(settings.store.url).has_admin_token()
    listen_host, listen_port = host or settings.server.host, port or settings.server.port
    inherited = os.environ.get(FD_ENV)
    if inherited:  # a worker of `serve --workers N`: its supervisor holds the lock and bound the socket
        import socket

        _logging(settings)
        _run_server(settings, listen_host, listen_port, socket.socket(fileno=int(inherited)), None)
        return
    lock = _lock(settings.data_path)
    sock = _bind(listen_host, listen_port)
    shown_host = f"[{listen_host}]" if ":" in listen_host else listen_host
    json_logs = _logging(settings)
    banner = _banner(settings, chosen, f"http://{shown_host}:{listen_port}")
    if count > 1:
        banner.append(f"workers: {count} processes on one socket (store and hot state shared)")
    for line in banner:
        if json_logs:  # every line a JSON object, so a shipper parses them all
            logging.getLogger("gateway").info(line)
        else:
            sys.stderr.write(line + "\n")
    sys.stderr.flush()
    if count > 1:
        _supervise(chosen, listen_host, listen_port, sock, lock, count)
    else:
        _run_server(settings, listen_host, listen_port, sock, lock)


def _logging(settings: Settings) -> bool:
    """One line per event (JSON or text), secrets scrubbed; True when the lines are JSON."""
    from server.logline import lean_records, log_handler

    lean_records()
    for noisy in ("httpx", "httpx2"):  # one INFO line per upstream call is noise
        logging.getLogger(noisy).setLevel(logging.WARNING)
    gateway_log = logging.getLogger("gateway")
    gateway_log.addHandler(log_handler(settings.logging.format))
    gateway_log.setLevel(logging.INFO)
    gateway_log.propagate = False  # Litestar configures the root logger too: one line per event
    return settings.logging.format == "json"


def _supervise(config: Path | None, host: str, port: int, sock: Any, lock: Any, count: int) -> None:
    """N workers, each this same command on the inherited socket; exits 0 once all drained cleanly."""
    from server.workers import Supervisor

    argv = [
        sys.executable,
        "-c",
        "from gatewayctl.main import app; app()",
        "serve",
        "--host",
        host,
        "--port",
        str(port),
    ]
    if config is not None:
        argv += ["--config", str(config.resolve())]
    try:
        code = Supervisor(argv, sock, count).run()
    finally:
        sock.close()
        lock.release()
    if code:
        raise CliError("a worker did not stop cleanly (see the log above)")


def _run_server(settings: Settings, listen_host: str, listen_port: int, sock: Any, lock: Any) -> None:
    import uvicorn

    from server.app import create_app, create_asgi
    from server.http_guard import uvicorn_options
    from server.serving import GatewayServer

    json_logs = settings.logging.format == "json"
    app = create_app(settings, listen_host)
    server = GatewayServer(
        uvicorn.Config(
            create_asgi(settings, app),
            host=listen_host,
            port=listen_port,
            access_log=False,  # ours (server/api/access_log.py) names the key and the cost
            log_level="warning",
            log_config=None if json_logs else uvicorn.config.LOGGING_CONFIG,  # JSON: uvicorn's lines below
            timeout_graceful_shutdown=10,
            server_header=False,
            proxy_headers=False,  # X-Forwarded-For is honoured only from configured trusted proxies
            **uvicorn_options(settings),  # deadlines, header cap, connection cap, open-files limit
        ),
        app,
        settings.server.shutdown_grace_s,  # GatewayServer sets uvicorn's graceful timeout from it
    )
    if json_logs:  # uvicorn's own warnings as JSON lines too, once
        uvicorn_log = logging.getLogger("uvicorn")
        uvicorn_log.addHandler(logging.getLogger("gateway").handlers[0])
        uvicorn_log.propagate = False
    # uvicorn drains, restores the handlers it found and re-raises the signal it caught: for SIGTERM
    # that handler is this no-op, so a clean drain exits 0 (systemd's and the spec's expectation).
    signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the server takes it (a reload), never a kill
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        if lock is not None:
            lock.release()
    if not server.started:
        raise CliError("the gateway did not start (see the log above)")
