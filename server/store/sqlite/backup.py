"""Backups of a live database, and the checks a copy must pass before anyone relies on it.

`take` copies the database with SQLite's online backup API in one step: a single read transaction, so
the copy is one consistent snapshot (everything committed before it began, hence every request already
acknowledged) while the writer goes on committing (WAL: readers never block it). The copy is switched
to a rollback journal so it is one self-contained file, fsynced, and then `check`ed: integrity_check,
the ledger's keyed chain verified with the installation's key, the schema's migrations known to this
code. The ledger key is not in the database and so not in any backup; it must be kept beside it.

`install` puts a checked copy in place of a database no server is using: the old file and its -wal and
-shm are moved aside together (a stale WAL applied to another database would corrupt it).

Failure behaviour: `BackupRefused` when the disk lacks room for the copy (its size plus the store's free
space floor plus a margin), so a backup can never fill the disk under the live database; sqlite3 and
OS errors propagate; a copy that fails its checks is reported, never installed by `install`.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from server.store.protocol import BackupRefused
from server.store.sqlite import ledger
from server.store.sqlite.migrations import MIGRATIONS

PART_SUFFIX = ".backup-part"
STALE_PART_S = 3600
GZIP_MAGIC = b"\x1f\x8b"


def _files(database: Path) -> list[Path]:
    return [database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def room_for_copy(database: Path, floor_bytes: int) -> None:
    """Refuse (BackupRefused) unless the data dir's disk holds a copy and still keeps its free-space floor."""
    size = sum(p.stat().st_size for p in _files(database)[:2] if p.exists())
    free = shutil.disk_usage(database.parent).free
    needed = size + floor_bytes + max(size // 10, 1 << 20)
    if free < needed:
        raise BackupRefused(f"{free >> 20} MiB free beside {database}, a copy needs about {needed >> 20} MiB")


def clear_stale_parts(folder: Path) -> None:
    """Copies a crashed backup left behind (older than an hour) are removed."""
    for part in folder.glob(f"*{PART_SUFFIX}"):
        if time.time() - part.stat().st_mtime > STALE_PART_S:
            part.unlink(missing_ok=True)


def take(database: Path, target: Path, busy_timeout_ms: int = 5000) -> None:
    """A consistent copy of a live database at `target`: one backup step, one snapshot, one file."""
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    copy = sqlite3.connect(target, isolation_level=None)
    try:
        source.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        source.backup(copy)  # pages=-1: the whole database inside one read transaction
        copy.execute("PRAGMA journal_mode=DELETE")  # self-contained: no -wal needed beside it
    finally:
        copy.close()
        source.close()
    _fsync(target)


def check(path: Path, chain: ledger.Chain) -> dict[str, Any]:
    """What a copy proves: integrity, the ledger verified with `chain`, its schema and its size."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        integrity = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        applied = [row[0] for row in conn.execute("SELECT name FROM _migrations ORDER BY name")]
        verified = ledger.verify(conn, chain)
        requests = conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    finally:
        conn.close()
    known = [name for name, _ in MIGRATIONS]
    problems = [f"{p['project_id']}: {problem}" for p in verified for problem in p["problems"]]
    return {
        "integrity": "ok" if integrity == ["ok"] else "; ".join(integrity[:5]),
        "ledger": {
            "ok": not problems,
            "projects": len(verified),
            "entries": sum(p["entries"] for p in verified),
            "problems": problems[:5],
        },
        "schema": applied[-1] if applied else None,
        "schema_current": applied == known,
        "schema_unknown": [name for name in applied if name not in known],
        "requests": requests,
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
    }


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def unpack(source: Path, target: Path) -> None:
    """A backup file (gzip-compressed or plain) as a plain database file at `target`, fsynced."""
    with source.open("rb") as raw:
        compressed = raw.read(2) == GZIP_MAGIC
    opener = gzip.open if compressed else open
    with opener(source, "rb") as src, target.open("wb") as out:  # type: ignore[operator]
        shutil.copyfileobj(src, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())


def install(copy: Path, database: Path, stamp: str) -> list[Path]:
    """Put `copy` in place of `database` (no server may be using it); the old files are moved aside with
    `stamp` in their names and returned."""
    moved = []
    for path in _files(database):
        if path.exists():
            aside = path.with_name(f"{path.name}.replaced-{stamp}")
            path.rename(aside)
            moved.append(aside)
    copy.rename(database)
    _fsync(database.parent)
    return moved


def migrate_file(database: Path) -> list[str]:
    """Bring a restored database's schema up to this code's (no server may be using it); names applied."""
    from server.store.sqlite.db import connect
    from server.store.sqlite.migrations import migrate

    conn = connect(database)
    try:
        return migrate(conn)
    finally:
        conn.close()


def inspect(database: Path) -> dict[str, Any]:
    """A read-only look at a database a server may be using (`gatewayctl doctor`): quick_check, and its
    migrations against this code's (pending ones run at the next start; unknown ones mean a newer version)."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        conn.execute("PRAGMA busy_timeout=2000")
        quick = [row[0] for row in conn.execute("PRAGMA quick_check")]
        applied = [row[0] for row in conn.execute("SELECT name FROM _migrations ORDER BY name")]
    finally:
        conn.close()
    known = [name for name, _ in MIGRATIONS]
    return {
        "quick_check": "ok" if quick == ["ok"] else "; ".join(quick[:5]),
        "applied": len(applied),
        "pending": [name for name in known if name not in applied],
        "unknown": [name for name in applied if name not in known],
    }
