"""SQL for the request log's bodies: insert (trimming the oldest past the disk budget), purge by age, read."""

from __future__ import annotations

import sqlite3
from typing import Any

from server.store.protocol import BodyRecord

TRIM_BATCH = 200


def insert(record: BodyRecord, trim_bytes: int) -> Any:
    """Store one request's bodies; then, when asked, drop the oldest until `trim_bytes` are freed. Returns
    the bytes freed (the caller keeps the running total)."""

    def op(conn: sqlite3.Connection) -> int:
        conn.execute(
            "INSERT OR REPLACE INTO request_bodies (request_id, created_ms, request, response, request_truncated,"
            " response_truncated, bytes) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                record.request_id,
                record.created_ms,
                record.request,
                record.response,
                int(record.request_truncated),
                int(record.response_truncated),
                record.size,
            ),
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


def total(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(SUM(bytes), 0) FROM request_bodies").fetchone()[0])


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
