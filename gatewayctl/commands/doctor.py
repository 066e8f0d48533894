"""`gatewayctl doctor`: one screen saying what is wrong, one line per check.

Local checks read the config and the database file where this command runs (read-only: safe beside a
running server); the rest asks the server (`GET /admin/v1/doctor`), which probes each provider with its
own secrets, so it works from another machine too. A check is `ok`, `warn` (works, but look), `FAIL`
(exit 1), or `skip` (it could not be run, and why).
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

import typer

from gatewayctl.errors import CliError
from gatewayctl.options import Config, Json, Token, Url
from gatewayctl.output import emit_json, say

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"
SKEW_WARN_S, SKEW_FAIL_S = 5, 60
STALE_S = 3600  # a request's hold lives seconds: one this old was never resolved
OUTBOX_STALE_S = 86_400

Check = tuple[str, str, str]  # (status, name, detail)


def _mib(size: int) -> str:
    return f"{size / (1 << 20):,.0f} MiB"


def _ago(ms: int | None, now_ms: int) -> str:
    if not ms:
        return "-"
    seconds = max(0, (now_ms - ms) // 1000)
    return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min" if seconds < 7200 else f"{seconds // 3600} h"


def local_checks(config: Path) -> tuple[list[Check], Any]:
    """Config, database and disk, from the files here; the settings (or None) for what follows."""
    from server.settings import ConfigError, load_settings

    if not config.is_file():
        return [(SKIP, "config", f"no {config} here (--config or GATEWAY_CONFIG): local checks skipped")], None
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        return [(FAIL, "config", str(exc))], None
    checks = [(OK, "config", f"{config.resolve()}: {len(settings.providers)} providers, {len(settings.models)} models")]
    checks.append(_shared_database(settings.store.url) if settings.store.shared else _database(settings.database_path))
    checks.append(_disk(settings))
    if not settings.ledger_key_path.is_file():
        checks.append((FAIL, "ledger key", f"{settings.ledger_key_path} missing: the server refuses to start"))
    return checks, settings


def _shared_database(url: str) -> Check:
    from server.store.postgres.copy import safe_url
    from server.store.postgres.store import inspect
    from server.store.protocol import StoreUnavailable

    try:
        found = inspect(url)
    except StoreUnavailable as exc:
        return FAIL, "database", str(exc)
    where = f"{safe_url(url)} (PostgreSQL {found['server_version']})"
    if found["unknown"]:
        return FAIL, "database", f"{where}: written by a newer version (migrations {', '.join(found['unknown'])})"
    if found["pending"]:
        return WARN, "database", f"{where}: {len(found['pending'])} migration(s) run at the next start"
    return OK, "database", f"{where}: schema current, {found['instances']} gateway process(es) live"


def _database(database: Path) -> Check:
    from server.store.sqlite.backup import inspect

    if not database.is_file():
        return FAIL, "database", f"{database} missing: run `gatewayctl init`"
    try:
        found = inspect(database)
    except Exception as exc:  # not a database, unreadable, locked past the wait
        return FAIL, "database", f"{database}: {exc}"
    if found["quick_check"] != "ok":
        return FAIL, "database", f"quick_check: {found['quick_check']}"
    if found["unknown"]:
        return FAIL, "database", f"written by a newer version (migrations {', '.join(found['unknown'])})"
    if found["pending"]:
        return WARN, "database", f"quick_check ok; {len(found['pending'])} migration(s) run at the next start"
    return (
        OK,
        "database",
        f"quick_check ok, schema current ({found['applied']} migrations), {_mib(database.stat().st_size)}",
    )


def _disk(settings: Any) -> Check:
    folder = settings.data_path
    try:
        usage = shutil.disk_usage(folder)
    except OSError as exc:
        return FAIL, "disk", f"{folder}: {exc.strerror or exc}"
    floor = settings.storage.min_free_mb << 20
    size = settings.database_path.stat().st_size if settings.database_path.is_file() else 0
    room = floor + (settings.storage.wal_limit_mb << 20) + size  # the WAL at its limit, and a backup copy
    detail = f"{_mib(usage.free)} free of {_mib(usage.total)} on {folder}"
    if usage.free < floor:
        return FAIL, "disk", f"{detail}: below storage.min_free_mb ({_mib(floor)}), requests get 503"
    if usage.free < room:
        return WARN, "disk", f"{detail}: less than the WAL limit and a backup copy need ({_mib(room)})"
    return OK, "disk", detail


def server_checks(url: str, token: str | None, settings: Any) -> list[Check]:
    """What the server reports: token, clock, store, providers, holds and outbox."""
    from gatewayctl.client import AdminClient

    if token is None:
        return [(SKIP, "server", "no admin token, so the server's checks were not run")]
    asked = time.time()
    try:
        report = AdminClient(url, token, timeout=20).get("/doctor")
    except CliError as exc:  # unreachable, or the token refused
        return [(FAIL, "server", exc.message)]
    local_ms = int((asked + time.time()) * 500)
    checks: list[Check] = [(OK, "server", f"{url} answers; config generation {report['config']['generation']}")]
    if report.get("stopping"):
        checks[0] = (WARN, "server", f"{url} is stopping")
    checks += _clock(report, local_ms)
    store = report["store"]
    if store["healthy"]:
        checks.append((OK, "store", f"takes writes ({store['database']})"))
    else:
        checks.append((FAIL, "store", f"cannot take writes: {store['problem']} (requests get 503)"))
    for probe in report["providers"]:
        checks.append(
            (OK if probe["ok"] else FAIL, f"provider {probe['name']}", f"({probe['kind']}) {probe['detail']}")
        )
    checks += _backlog(report)
    return checks


def _clock(report: dict[str, Any], local_ms: int) -> list[Check]:
    now = report["now_ms"]
    skew = abs(now - local_ms) / 1000
    status = OK if skew < SKEW_WARN_S else WARN if skew < SKEW_FAIL_S else FAIL
    checks = [(status, "clock", f"server and this machine agree within {skew:.1f} s")]
    if status != OK:
        checks[0] = (status, "clock", f"server and this machine differ by {skew:.1f} s (is NTP running?)")
    newest = report["backlog"].get("newest_record_ms")
    if newest and newest > now + SKEW_WARN_S * 1000:
        ahead = (newest - now) / 1000
        checks.append((FAIL, "clock", f"the newest record is {ahead:.0f} s in the future: the clock went back"))
    return checks


def _backlog(report: dict[str, Any]) -> list[Check]:
    now, found = report["now_ms"], report["backlog"]
    holds, oldest = found["open_holds"], found["open_holds_oldest_ms"]
    stale = oldest is not None and now - oldest > STALE_S * 1000
    detail = f"{holds} open ({report['holds_in_memory']} in memory), oldest {_ago(oldest, now)}"
    checks = [(WARN if stale else OK, "holds", detail + (" (never resolved?)" if stale else ""))]
    pending, first = found["outbox_pending"], found["outbox_oldest_ms"]
    late = first is not None and now - first > OUTBOX_STALE_S * 1000
    detail = f"{pending} webhook deliveries waiting, oldest {_ago(first, now)}"
    checks.append((WARN if late else OK, "outbox", detail))
    return checks


def doctor(config: Config = None, json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """Check the installation and say what is wrong, one line per check.

    Config valid; database intact and migrated; disk space for the data dir; ledger key; admin token;
    the server's store; each provider reachable with its key accepted (a models call, 5 s at most); clock;
    open holds and outbox backlog. Exits 1 when any check fails.
    """
    from gatewayctl.credentials import admin_token, config_path, server_url

    path = config_path(config)
    checks, settings = local_checks(path)
    base = server_url(url, path)
    try:
        found: str | None = admin_token(token, base)
        checks.append((OK, "admin token", "from --token" if token else "from GATEWAY_ADMIN_TOKEN or the keyring"))
    except CliError as exc:
        found = None
        checks.append((FAIL, "admin token", exc.message))
    checks += server_checks(base, found, settings)
    failed = [c for c in checks if c[0] == FAIL]
    if json_out:
        emit_json({"ok": not failed, "checks": [{"status": s, "name": n, "detail": d} for s, n, d in checks]})
    else:
        width = max(len(name) for _, name, _ in checks)
        for status, name, detail in checks:
            say(f"{status:<4}  {name:<{width}}  {detail}")
    if failed and json_out:  # the document says ok: false; no second JSON document for the exit code
        sys.stderr.write(f"error: {len(failed)} check(s) failed\n")
        raise typer.Exit(1)
    if failed:
        raise CliError(
            f"{len(failed)} check(s) failed: {', '.join(name for _, name, _ in failed)}", code="doctor_failed"
        )
