"""SQL for the usage rollups behind /v1/usage: one row per hour x project x key x model, moved in the
transaction of every closing, and the query that answers a window exactly: whole hours from the
rollups, the partial hours at its edges from the request and usage rows themselves."""

from __future__ import annotations

import sqlite3
from typing import Any

from server.store.sqlite.catalog import rows
from server.usage_report import BUCKETS, COLUMNS, bucket_of

HOUR_MS = 3_600_000
_SUMS = ("requests", "errors", "input_tokens", "output_tokens", "cached_tokens", "cost_micro")
_UPSERT = [
    "INSERT INTO usage_hours (project_id, hour_ms, key_id, model, requests, errors, input_tokens, output_tokens,"
    f" cached_tokens, cost_micro, {column}) VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, 1)"
    " ON CONFLICT (project_id, hour_ms, key_id, model) DO UPDATE SET requests = requests + 1,"
    " errors = errors + excluded.errors, input_tokens = input_tokens + excluded.input_tokens,"
    " output_tokens = output_tokens + excluded.output_tokens, cached_tokens = cached_tokens + excluded.cached_tokens,"
    f" cost_micro = cost_micro + excluded.cost_micro, {column} = {column} + 1"
    for column in COLUMNS
]


def add_to_rollup(
    conn: sqlite3.Connection,
    project_id: str,
    key_id: str,
    model: str,
    at_ms: int,
    error: bool,
    tokens: tuple[int, int, int],
    cost_micro: int,
    latency_ms: float,
) -> None:
    """Count one ended request (inside the caller's transaction)."""
    hour = at_ms - at_ms % HOUR_MS
    conn.execute(
        _UPSERT[bucket_of(latency_ms)],
        (project_id, hour, key_id, model, int(error), tokens[0], tokens[1], tokens[2], cost_micro),
    )


def _filters(project_id: str, model: str | None, key_id: str | None) -> tuple[str, list[Any]]:
    where, args = "project_id = ?", [project_id]
    if model:
        where, args = where + " AND model = ?", [*args, model]
    if key_id:
        where, args = where + " AND key_id = ?", [*args, key_id]
    return where, args


def window(
    conn: sqlite3.Connection, project_id: str, start_ms: int, end_ms: int, model: str | None, key_id: str | None
) -> list[dict[str, Any]]:
    """Per hour x key x model totals and latency buckets over [start_ms, end_ms) for one project."""
    first_full = -(-start_ms // HOUR_MS) * HOUR_MS
    last_full = end_ms - end_ms % HOUR_MS
    where, args = _filters(project_id, model, key_id)
    found: list[dict[str, Any]] = []
    if first_full < last_full:
        found += rows(
            conn,
            f"SELECT hour_ms, key_id, model, {', '.join(_SUMS)}, {', '.join(COLUMNS)} FROM usage_hours"
            f" WHERE {where} AND hour_ms >= ? AND hour_ms < ?",
            (*args, first_full, last_full),
        )
        edges = [(start_ms, first_full), (last_full, end_ms)]
    else:
        edges = [(start_ms, end_ms)]
    for low, high in edges:
        if low < high:
            found += _raw(conn, project_id, low, high, model, key_id)
    return found


def _raw(
    conn: sqlite3.Connection, project_id: str, low: int, high: int, model: str | None, key_id: str | None
) -> list[dict[str, Any]]:
    """The same figures from the request rows of a partial hour (a window's edge)."""
    where, args = _filters(project_id, model, key_id)
    where = " AND ".join(f"r.{part}" for part in where.split(" AND "))
    found = conn.execute(
        "SELECT r.key_id, r.model, r.status, r.started_ms, COALESCE(u.created_ms, r.ended_ms), u.input_tokens,"
        " u.output_tokens, u.cached_tokens, u.cost_micro FROM requests r LEFT JOIN usage u ON u.request_id = r.id"
        f" WHERE {where} AND r.status != 'pending' AND COALESCE(u.created_ms, r.ended_ms) >= ?"
        " AND COALESCE(u.created_ms, r.ended_ms) < ?",
        (*args, low, high),
    ).fetchall()
    out = []
    for key, model_name, status, started, at, tokens_in, tokens_out, cached, cost in found:
        counts = [0] * BUCKETS
        counts[bucket_of(at - started)] = 1
        out.append(
            {
                "hour_ms": at - at % HOUR_MS,
                "key_id": key,
                "model": model_name or "",
                "requests": 1,
                "errors": int(status != "ok"),
                "input_tokens": tokens_in or 0,
                "output_tokens": tokens_out or 0,
                "cached_tokens": cached or 0,
                "cost_micro": cost or 0,
                **dict(zip(COLUMNS, counts, strict=True)),
            }
        )
    return out
