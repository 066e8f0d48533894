"""SQL for idempotency keys: the first answer stored in its closing's transaction, looked up by (project, key)."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from server.store.protocol import IdempotencyRecord


def insert(conn: sqlite3.Connection, record: IdempotencyRecord) -> None:
    """Inside the closing's transaction; an expired row under the same key is replaced."""
    conn.execute(
        "INSERT OR REPLACE INTO idempotency (project_id, key, body_sha256, request_id, status, headers, stream, body,"
        " created_ms, expires_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            record.project_id,
            record.key,
            record.body_sha256,
            record.request_id,
            record.status,
            orjson.dumps(dict(record.headers)).decode(),
            int(record.stream),
            record.body,
            record.created_ms,
            record.expires_ms,
        ),
    )


def find(conn: sqlite3.Connection, project_id: str, key: str, now_ms: int) -> IdempotencyRecord | None:
    row = conn.execute(
        "SELECT body_sha256, request_id, status, headers, stream, body, created_ms, expires_ms FROM idempotency"
        " WHERE project_id = ? AND key = ? AND expires_ms > ?",
        (project_id, key, now_ms),
    ).fetchone()
    if row is None:
        return None
    sha, request_id, status, headers, stream, body, created, expires = row
    return IdempotencyRecord(
        project_id, key, sha, request_id, status, orjson.loads(headers), bool(stream), body, created, expires
    )


def purge(now_ms: int) -> Any:
    def op(conn: sqlite3.Connection) -> int:
        return conn.execute("DELETE FROM idempotency WHERE expires_ms <= ?", (now_ms,)).rowcount

    return op
