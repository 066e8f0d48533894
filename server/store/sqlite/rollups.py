"""SQL for the usage rollups behind /v1/usage: one row per hour x project x key x model, moved in the
transaction of every closing, and the query that answers a window exactly: whole hours from the
rollups, the partial hours at its edges from the request and usage rows themselves."""

from __future__ import annotations

import bisect
import sqlite3
from collections.abc import Sequence
from typing import Any

from server.store.sqlite.catalog import rows
from server.usage_report import BUCKETS, COLUMNS, bucket_of

HOUR_MS = 3_600_000
SUMS = ("requests", "errors", "input_tokens", "output_tokens", "cached_tokens", "cost_micro")
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


def _filters(project_id: str, model: str | None, key_id: str | None, alias: str = "") -> tuple[str, list[Any]]:
    where, args = f"{alias}project_id = ?", [project_id]
    if model:
        where, args = where + f" AND {alias}model = ?", [*args, model]
    if key_id:
        where, args = where + f" AND {alias}key_id = ?", [*args, key_id]
    return where, args


def window(
    conn: sqlite3.Connection,
    project_id: str,
    start_ms: int,
    end_ms: int,
    model: str | None,
    key_id: str | None,
    group_by: Sequence[str] = (),
    days: Sequence[tuple[str, int, int]] = (),
) -> list[dict[str, Any]]:
    """One project's totals and latency buckets over [start_ms, end_ms), summed by `group_by` (model, key,
    day; `days` gives each day's label and bounds in the billing zone). Whole hours are summed by SQL from
    the rollups; the partial hours at the edges from the request rows."""
    first_full = -(-start_ms // HOUR_MS) * HOUR_MS
    last_full = end_ms - end_ms % HOUR_MS
    found: list[dict[str, Any]] = []
    if first_full < last_full:
        found += _summed(conn, project_id, first_full, last_full, model, key_id, group_by, days)
        edges = [(start_ms, first_full), (last_full, end_ms)]
    else:
        edges = [(start_ms, end_ms)]
    for low, high in edges:
        if low < high:
            found += _raw(conn, project_id, low, high, model, key_id, group_by, days)
    return found


def _day_of(at_ms: int, days: Sequence[tuple[str, int, int]]) -> str:
    index = bisect.bisect_right([lo for _, lo, _ in days], at_ms) - 1
    return days[max(index, 0)][0] if days else ""


def _summed(
    conn: sqlite3.Connection,
    project_id: str,
    low: int,
    high: int,
    model: str | None,
    key_id: str | None,
    group_by: Sequence[str],
    days: Sequence[tuple[str, int, int]],
) -> list[dict[str, Any]]:
    where, args = _filters(project_id, model, key_id, "u.")
    keys = [column for name, column in (("model", "u.model"), ("key", "u.key_id")) if name in group_by]
    select = [f"{column} AS {column[2:]}" for column in keys]
    join, join_args = "", []
    if "day" in group_by and days:
        values = ", ".join("(?, ?, ?)" for _ in days)
        join = (
            f" JOIN (SELECT column1 AS day, column2 AS lo, column3 AS hi FROM (VALUES {values})) d"
            " ON u.hour_ms >= d.lo AND u.hour_ms < d.hi"
        )
        join_args = [value for day in days for value in day]
        keys.append("d.day")
        select.append("d.day AS day")
    sums = ", ".join(f"COALESCE(SUM(u.{name}), 0) AS {name}" for name in (*SUMS, *COLUMNS))
    grouping = f" GROUP BY {', '.join(keys)}" if keys else ""
    return rows(
        conn,
        f"SELECT {', '.join([*select, sums])} FROM usage_hours u{join}"
        f" WHERE {where} AND u.hour_ms >= ? AND u.hour_ms < ?{grouping}",
        (*join_args, *args, low, high),
    )


def _raw(
    conn: sqlite3.Connection,
    project_id: str,
    low: int,
    high: int,
    model: str | None,
    key_id: str | None,
    group_by: Sequence[str],
    days: Sequence[tuple[str, int, int]],
) -> list[dict[str, Any]]:
    """The same figures from the request rows of a partial hour (a window's edge), one row each."""
    where, args = _filters(project_id, model, key_id, "r.")
    found = conn.execute(  # a closing writes the usage row at the request's end: one instant for both
        "SELECT r.key_id, r.model, r.status, r.started_ms, r.ended_ms, u.input_tokens,"
        " u.output_tokens, u.cached_tokens, u.cost_micro FROM requests r LEFT JOIN usage u ON u.request_id = r.id"
        f" WHERE {where} AND r.ended_ms >= ? AND r.ended_ms < ? AND r.status != 'pending'",
        (*args, low, high),
    ).fetchall()
    out = []
    for key, model_name, status, started, at, tokens_in, tokens_out, cached, cost in found:
        counts = [0] * BUCKETS
        counts[bucket_of(at - started)] = 1
        row: dict[str, Any] = {
            "requests": 1,
            "errors": int(status != "ok"),
            "input_tokens": tokens_in or 0,
            "output_tokens": tokens_out or 0,
            "cached_tokens": cached or 0,
            "cost_micro": cost or 0,
            **dict(zip(COLUMNS, counts, strict=True)),
        }
        if "model" in group_by:
            row["model"] = model_name or ""
        if "key" in group_by:
            row["key_id"] = key
        if "day" in group_by:
            row["day"] = _day_of(at, days)
        out.append(row)
    return out
