"""SQL for the request log's bodies, kept in a database file of their own (`bodies.db` beside
`gateway.db`): insert (trimming the oldest past the disk budget), purge by age, read.

Apart because they are diagnostics, not records: their bytes never ride in the fsync of a usage commit
(the file is written with synchronous=NORMAL: a power loss may lose the last bodies, never corrupt), they
do not swell backups of the ledger, and the disk budget bounds a file of their own."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from server.store.protocol import BodyRecord
from server.store.sqlite.db import connect

FILE_NAME = "bodies.db"
SYNCHRONOUS = "NORMAL"
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS request_bodies (request_id TEXT PRIMARY KEY, created_ms INTEGER NOT NULL,"
    " request BLOB, response BLOB, request_truncated INTEGER NOT NULL DEFAULT 0,"
    " response_truncated INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS idx_request_bodies_created ON request_bodies (created_ms)",
)

TRIM_BATCH = 200


def insert(records: Sequence[BodyRecord], trim_bytes: int) -> Any:
    """Store requests' bodies; then, when asked, drop the oldest until `trim_bytes` are freed. Returns the
    bytes freed (the caller keeps the running total)."""

    def op(conn: sqlite3.Connection) -> int:
        conn.executemany(
            "INSERT OR REPLACE INTO request_bodies (request_id, created_ms, request, response, request_truncated,"
            " response_truncated, bytes) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    record.request_id,
                    record.created_ms,
                    record.request,
                    record.response,
                    int(record.request_truncated),
                    int(record.response_truncated),
                    record.size,
                )
                for record in records
            ],
        )
        freed = 0
        while freed < trim_bytes:
            oldest = conn.execute(
                "SELECT request_id, bytes FROM request_bodies ORDER BY created_ms LIMIT ?", (TRIM_BATCH,)
            ).fetchall()
            if not oldest:
                break
            for request_id, size in oldest:
                if freed >= trim_bytes:
                    break
                conn.execute("DELETE FROM request_bodies WHERE request_id = ?", (request_id,))
                freed += size
        return freed

    return op


def purge(before_ms: int) -> Any:
    """Drop bodies older than `before_ms`; returns the bytes freed."""

    def op(conn: sqlite3.Connection) -> int:
        freed = conn.execute(
            "SELECT COALESCE(SUM(bytes), 0) FROM request_bodies WHERE created_ms < ?", (before_ms,)
        ).fetchone()[0]
        conn.execute("DELETE FROM request_bodies WHERE created_ms < ?", (before_ms,))
        return int(freed)

    return op


def prepare(path: Path, busy_timeout_ms: int) -> int:
    """Create the bodies database when missing; returns what its bodies weigh now."""
    conn = connect(path, SYNCHRONOUS, busy_timeout_ms)
    try:
        for statement in SCHEMA:
            conn.execute(statement)
        return int(conn.execute("SELECT COALESCE(SUM(bytes), 0) FROM request_bodies").fetchone()[0])
    finally:
        conn.close()


def read(conn: sqlite3.Connection, request_id: str) -> dict[str, Any] | None:
    found = conn.execute(
        "SELECT request, response, request_truncated, response_truncated, created_ms FROM request_bodies"
        " WHERE request_id = ?",
        (request_id,),
    ).fetchone()
    if found is None:
        return None
    request, response, request_truncated, response_truncated, created = found
    return {
        "request": request,
        "response": response,
        "request_truncated": bool(request_truncated),
        "response_truncated": bool(response_truncated),
        "created_ms": created,
    }
