"""Numbered schema migrations; each runs in its own transaction and is recorded once."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import sqlite_utils

from server.clock import now_ms

Migration = Callable[[sqlite_utils.Database], None]


def _m001_initial(db: sqlite_utils.Database) -> None:
    db["projects"].create(
        {"id": str, "name": str, "plan": str, "billing": str, "created_ms": int},
        pk="id",
        not_null={"name", "billing", "created_ms"},
        defaults={"billing": "postpaid"},
    )
    db["projects"].create_index(["name"], unique=True)
    db["api_keys"].create(
        {
            "id": str,
            "project_id": str,
            "name": str,
            "key_hash": str,
            "prefix": str,
            "scopes": str,
            "created_ms": int,
            "expires_ms": int,
            "revoked_ms": int,
        },
        pk="id",
        not_null={"project_id", "key_hash", "prefix", "created_ms"},
        foreign_keys=[("project_id", "projects", "id")],
    )
    db["api_keys"].create_index(["key_hash"], unique=True)
    db["api_keys"].create_index(["project_id"])
    db["requests"].create(
        {
            "id": str,
            "client_request_id": str,
            "project_id": str,
            "key_id": str,
            "endpoint": str,
            "model": str,
            "stream": int,
            "status": str,
            "http_status": int,
            "error_code": str,
            "provider": str,
            "upstream_model": str,
            "attempts": str,
            "started_ms": int,
            "ended_ms": int,
        },
        pk="id",
        not_null={"project_id", "key_id", "endpoint", "model", "status", "started_ms"},
    )
    db["requests"].create_index(["client_request_id"])
    db["requests"].create_index(["status"])
    db["requests"].create_index(["started_ms"])
    db["usage"].create(
        {
            "request_id": str,
            "project_id": str,
            "key_id": str,
            "model": str,
            "provider": str,
            "input_tokens": int,
            "output_tokens": int,
            "cached_tokens": int,
            "cost_micro": int,
            "price_card": str,
            "estimated": int,
            "created_ms": int,
        },
        pk="request_id",
        not_null={"project_id", "key_id", "model", "cost_micro", "price_card", "created_ms"},
        foreign_keys=[("request_id", "requests", "id")],
    )
    db["usage"].create_index(["created_ms"])
    db["usage"].create_index(["project_id", "created_ms"])
    db["admin_tokens"].create(
        {"id": str, "token_hash": str, "prefix": str, "created_ms": int, "revoked_ms": int},
        pk="id",
        not_null={"token_hash", "prefix", "created_ms"},
    )
    db["admin_tokens"].create_index(["token_hash"], unique=True)


MIGRATIONS: list[tuple[str, Migration]] = [
    ("001_initial", _m001_initial),
]


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply pending migrations in order; returns the names applied now."""
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_ms INTEGER NOT NULL)")
    done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    db = sqlite_utils.Database(conn)
    applied: list[str] = []
    for name, step in MIGRATIONS:
        if name in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            step(db)
            conn.execute("INSERT INTO _migrations (name, applied_ms) VALUES (?, ?)", (name, now_ms()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied
