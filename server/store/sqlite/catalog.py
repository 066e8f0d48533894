"""SQL for the catalog the snapshot mirrors: projects, API keys, admin tokens."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

BILLING_DETAIL_COLUMNS = ("billing_name", "billing_address", "billing_tax_id", "billing_email", "tax_rate")


def rows(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    cur = conn.execute(sql, args)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def load_projects(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return rows(conn, "SELECT * FROM projects ORDER BY created_ms")


def load_keys(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    keys = rows(conn, "SELECT * FROM api_keys ORDER BY created_ms")
    for key in keys:
        key["scopes"] = orjson.loads(key["scopes"] or "{}")
    return keys


def load_admin_token_hashes(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT token_hash FROM admin_tokens WHERE revoked_ms IS NULL")}


def insert_project(row: dict[str, Any]) -> Any:
    def op(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO projects (id, name, plan, billing, created_ms) VALUES (:id, :name, :plan, :billing,"
            " :created_ms)",
            row,
        )

    return op


def insert_key(row: dict[str, Any]) -> Any:
    stored = {**row, "scopes": orjson.dumps(row.get("scopes") or {}).decode()}

    def op(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO api_keys (id, project_id, name, key_hash, prefix, scopes, created_ms, expires_ms,"
            " revoked_ms) VALUES (:id, :project_id, :name, :key_hash, :prefix, :scopes, :created_ms,"
            " :expires_ms, :revoked_ms)",
            stored,
        )

    return op


def revoke_key(key_id: str, when_ms: int) -> Any:
    def op(conn: sqlite3.Connection) -> int:
        cur = conn.execute("UPDATE api_keys SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL", (when_ms, key_id))
        return cur.rowcount

    return op


def insert_admin_token(conn: sqlite3.Connection, token_id: str, token_hash: str, prefix: str, when_ms: int) -> None:
    conn.execute(
        "INSERT INTO admin_tokens (id, token_hash, prefix, created_ms) VALUES (?, ?, ?, ?)",
        (token_id, token_hash, prefix, when_ms),
    )


def update_project(project_id: str, **values: Any) -> Any:
    """Set plan, billing, budget, Stripe customer or billing details of a project (column names are ours)."""
    allowed = {"plan", "billing", "monthly_budget_micro", "stripe_customer_id", *BILLING_DETAIL_COLUMNS}
    assert set(values) <= allowed, values
    assignments = ", ".join(f"{name} = :{name}" for name in values)

    def op(conn: sqlite3.Connection) -> None:
        conn.execute(f"UPDATE projects SET {assignments} WHERE id = :project_id", {**values, "project_id": project_id})

    return op


def update_key_scopes(key_id: str, scopes: dict[str, Any], expires_ms: int | None) -> Any:
    def op(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE api_keys SET scopes = ?, expires_ms = ? WHERE id = ?",
            (orjson.dumps(scopes).decode(), expires_ms, key_id),
        )

    return op


def rotate_key(key_id: str, new_hash: str, prefix: str, prev_hash: str | None, prev_valid_until_ms: int | None) -> Any:
    def op(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE api_keys SET key_hash = ?, prefix = ?, prev_key_hash = ?, prev_valid_until_ms = ? WHERE id = ?",
            (new_hash, prefix, prev_hash, prev_valid_until_ms, key_id),
        )

    return op


def touch_keys(last_used: list[tuple[int, str]]) -> Any:
    """Record keys' last use (ms, key id) in one statement batch; never moves a time backwards."""

    def op(conn: sqlite3.Connection) -> None:
        conn.executemany(
            "UPDATE api_keys SET last_used_ms = ?1 WHERE id = ?2 AND COALESCE(last_used_ms, 0) < ?1", last_used
        )

    return op
