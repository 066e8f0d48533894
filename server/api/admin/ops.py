"""Admin routes for running the appliance: reload the config, take a backup, answer the doctor.

`POST /admin/v1/backup` makes a consistent copy of the live database beside it (one snapshot: every
request acknowledged before it started is in it), checks it (integrity_check, the ledger verified with
the installation's key, the schema) and only then streams it, gzip-compressed with `?compress=gzip`;
the report rides in the `x-backup-report` header (JSON) and the copy is removed once sent. The ledger
key is not in the database: the report names its file and fingerprint so it can be kept beside.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from litestar import Request, Response, get, post
from litestar.response import Stream

from server.api.common import gateway_of, json_response
from server.clock import now_ms
from server.errors import BACKUP_FAILED, BACKUP_NO_ROOM, INVALID_VALUE, RELOAD_REFUSED, GatewayError
from server.reload import ReloadRefused, reload
from server.store.protocol import BackupRefused

CHUNK = 1 << 20


@post("/reload", status_code=200)
async def post_reload(request: Request[Any, Any, Any]) -> Response[Any]:
    """Re-read config.toml (as SIGHUP does); 400 `invalid_config` with the reason when it is refused."""
    try:
        answer = await reload(gateway_of(request))
    except ReloadRefused as exc:
        raise RELOAD_REFUSED(detail=str(exc)) from None
    return json_response(answer)


@post("/backup", status_code=200)
async def post_backup(request: Request[Any, Any, Any], compress: str = "none") -> Stream:
    """The database as one checked SQLite file (gzip with ?compress=gzip); the report in x-backup-report."""
    if compress not in ("none", "gzip"):
        raise INVALID_VALUE(field="compress", what="'none' or 'gzip'")
    gw = gateway_of(request)
    started = now_ms()
    try:
        copy, report = await gw.store.backup()
    except BackupRefused as exc:
        raise BACKUP_NO_ROOM(detail=str(exc)) from None
    problems = _problems(report)
    if problems:
        copy.unlink(missing_ok=True)
        raise BACKUP_FAILED(detail="; ".join(problems))
    report |= {
        "taken_ms": started,
        "took_ms": now_ms() - started,
        "compress": compress,
        "ledger_key": {"file": str(gw.settings.ledger_key_path), "fingerprint": gw.chain.fingerprint()},
    }
    media = "application/gzip" if compress == "gzip" else "application/vnd.sqlite3"
    return Stream(
        _send(copy, compress == "gzip"),
        media_type=media,
        headers={"x-backup-report": orjson.dumps(report).decode(), "cache-control": "no-store"},
    )


def _problems(report: dict[str, Any]) -> list[str]:
    problems = [] if report["integrity"] == "ok" else [f"integrity_check: {report['integrity']}"]
    if not report["ledger"]["ok"]:
        problems.append(f"ledger: {'; '.join(report['ledger']['problems'])}")
    return problems


async def _send(copy: Path, gzip: bool) -> AsyncIterator[bytes]:
    """The copy's bytes (gzip-framed when asked), read and compressed off the event loop; removed after."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 31) if gzip else None
    try:
        with copy.open("rb") as src:
            while chunk := await asyncio.to_thread(src.read, CHUNK):
                if packer is not None:
                    chunk = await asyncio.to_thread(packer.compress, chunk)
                if chunk:
                    yield chunk
        if packer is not None:
            yield packer.flush()
    finally:
        with contextlib.suppress(OSError):
            copy.unlink()


@get("/doctor")
async def get_doctor(request: Request[Any, Any, Any]) -> Response[Any]:
    """What `gatewayctl doctor` asks the server: its clock, store, disk, providers (probed in parallel,
    each within 5 s), open holds and outbox backlog. Every part answers; failures are in the values."""
    gw = gateway_of(request)
    settings = gw.settings
    providers = list(gw.providers.items())
    probes = await asyncio.gather(*(_probe(provider) for _, provider in providers))
    try:
        disk = shutil.disk_usage(settings.data_path)
        space: dict[str, Any] = {"free_bytes": disk.free, "total_bytes": disk.total}
    except OSError as exc:
        space = {"error": str(exc)}
    return json_response(
        {
            "now_ms": now_ms(),
            "config": {"file": str(settings.config_file or ""), "generation": gw.generations.current.number},
            "store": {
                "healthy": gw.store.healthy,
                "problem": gw.store.problem,
                "database": str(settings.database_path),
                "min_free_bytes": settings.storage.min_free_mb << 20,
                "wal_limit_bytes": settings.storage.wal_limit_mb << 20,
                **space,
            },
            "providers": [
                {"name": name, "kind": settings_of.kind, **probe}
                for (name, _), probe, settings_of in zip(providers, probes, settings.providers, strict=True)
            ],
            "holds_in_memory": gw.budgets.open_holds,
            "backlog": await gw.store.backlog(),
            "stopping": gw.stopping,
        }
    )


async def _probe(provider: Any) -> dict[str, Any]:
    try:
        return {"ok": True, "detail": await provider.probe()}
    except GatewayError as exc:
        return {"ok": False, "detail": exc.message}
    except Exception as exc:  # a provider bug must not hide the other answers
        return {"ok": False, "detail": f"probe failed: {exc!r}"}


OPS_HANDLERS = [post_reload, post_backup, get_doctor]
