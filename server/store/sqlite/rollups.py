"""SQL for the usage rollups behind /v1/usage: one row per hour (and per UTC day) x project x key x model,
moved in the transaction of every closing, and the query that answers a window exactly: whole UTC days
from the day rollups, whole hours from the hour rollups, the partial hours at its edges from the request
and usage rows themselves (summed by SQL too, latency bucket by bucket). A 30-day window reads ~30 day
rows per key and model instead of ~720 hour rows."""

from __future__ import annotations

import bisect
import sqlite3
from collections.abc import Sequence
from typing import Any

from server.store.sqlite.catalog import rows
from server.usage_report import BOUNDS_MS, COLUMNS, bucket_of

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
SUMS = ("requests", "errors", "input_tokens", "output_tokens", "cached_tokens", "cost_micro")
TIERS = (("usage_days", "day_ms", DAY_MS), ("usage_hours", "hour_ms", HOUR_MS))  # coarsest first


def _upserts(table: str, period: str) -> list[str]:
    """One statement per latency bucket: count a request into its period's row."""
    return [
        f"INSERT INTO {table} (project_id, {period}, key_id, model, requests, errors, input_tokens, output_tokens,"
        f" cached_tokens, cost_micro, {column}) VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, 1)"
        f" ON CONFLICT (project_id, {period}, key_id, model) DO UPDATE SET requests = requests + 1,"
        " errors = errors + excluded.errors, input_tokens = input_tokens + excluded.input_tokens,"
        " output_tokens = output_tokens + excluded.output_tokens,"
        " cached_tokens = cached_tokens + excluded.cached_tokens,"
        f" cost_micro = cost_micro + excluded.cost_micro, {column} = {column} + 1"
        for column in COLUMNS
    ]


_UPSERTS = [(_upserts(table, period), size) for table, period, size in TIERS]
HOURS_ONLY = _UPSERTS[1:]  # the schema before usage_days (migration 008 backfills with it)
# A request's latency bucket in SQL, as usage_report.bucket_of gives it (the first bound not below it).
_BUCKET = (
    "CASE "
    + " ".join(f"WHEN r.ended_ms - r.started_ms <= {bound} THEN {n}" for n, bound in enumerate(BOUNDS_MS))
    + f" ELSE {len(BOUNDS_MS)} END"
)


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
    tiers: Sequence[tuple[list[str], int]] = _UPSERTS,
) -> None:
    """Count one ended request into its hour and its UTC day (inside the caller's transaction)."""
    bucket = bucket_of(latency_ms)
    for statements, size in tiers:
        conn.execute(
            statements[bucket],
            (project_id, at_ms - at_ms % size, key_id, model, int(error), tokens[0], tokens[1], tokens[2], cost_micro),
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
    day; `days` gives each day's label and bounds in the billing zone). Whole UTC days come from the day
    rollups (unless grouping by days that are not UTC days), whole hours from the hour rollups, the
    partial hours at the edges from the request rows."""
    first_hour = -(-start_ms // HOUR_MS) * HOUR_MS
    last_hour = end_ms - end_ms % HOUR_MS
    if first_hour >= last_hour:
        return _raw(conn, project_id, start_ms, end_ms, model, key_id, group_by, days)
    found = _raw(conn, project_id, start_ms, first_hour, model, key_id, group_by, days)
    found += _raw(conn, project_id, last_hour, end_ms, model, key_id, group_by, days)
    utc_days = "day" not in group_by or all(lo % DAY_MS == 0 for _, lo, _ in days)
    first_day = -(-first_hour // DAY_MS) * DAY_MS
    last_day = last_hour - last_hour % DAY_MS
    if utc_days and first_day < last_day:
        spans = [("usage_days", "day_ms", first_day, last_day), ("usage_hours", "hour_ms", first_hour, first_day)]
        spans.append(("usage_hours", "hour_ms", last_day, last_hour))
    else:
        spans = [("usage_hours", "hour_ms", first_hour, last_hour)]
    for table, period, low, high in spans:
        if low < high:
            found += _summed(conn, table, period, project_id, low, high, model, key_id, group_by, days)
    return found


def _day_of(at_ms: int, days: Sequence[tuple[str, int, int]]) -> str:
    index = bisect.bisect_right([lo for _, lo, _ in days], at_ms) - 1
    return days[max(index, 0)][0] if days else ""


def _summed(
    conn: sqlite3.Connection,
    table: str,
    period: str,
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
    by_day = "day" in group_by and bool(days)
    if by_day:  # grouped by period here, each period then labelled with its day (no join: faster)
        keys.append(f"u.{period}")
        select.append(f"u.{period} AS period_start")
    sums = ", ".join(f"COALESCE(SUM(u.{name}), 0) AS {name}" for name in (*SUMS, *COLUMNS))
    grouping = f" GROUP BY {', '.join(keys)}" if keys else ""
    found = rows(
        conn,
        f"SELECT {', '.join([*select, sums])} FROM {table} u"
        f" WHERE {where} AND u.{period} >= ? AND u.{period} < ?{grouping}",
        (*args, low, high),
    )
    if by_day:
        for row in found:
            row["day"] = _day_of(row.pop("period_start"), days)
    return found


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
    """The same figures from the request rows of a partial hour (a window's edge), summed by SQL per group
    and latency bucket. An edge lies inside one hour, so inside one day."""
    if low >= high:
        return []
    where, args = _filters(project_id, model, key_id, "r.")
    keys = [column for name, column in (("model", "r.model"), ("key", "r.key_id")) if name in group_by]
    select = "".join(f"{column}, " for column in keys)
    found = conn.execute(  # a closing writes the usage row at the request's end: one instant for both
        f"SELECT {select}{_BUCKET} AS bucket, COUNT(*), SUM(CASE WHEN r.status != 'ok' THEN 1 ELSE 0 END),"
        " COALESCE(SUM(u.input_tokens), 0),"
        " COALESCE(SUM(u.output_tokens), 0), COALESCE(SUM(u.cached_tokens), 0), COALESCE(SUM(u.cost_micro), 0)"
        " FROM requests r LEFT JOIN usage u ON u.request_id = r.id"
        f" WHERE {where} AND r.ended_ms >= ? AND r.ended_ms < ? AND r.status != 'pending'"
        " AND (r.session_id IS NULL OR r.session_id != r.id)"  # a realtime session's row: its responses count
        f" GROUP BY {select}bucket",
        (*args, low, high),
    ).fetchall()
    day = _day_of(low, days) if "day" in group_by else None
    out = []
    for found_row in found:
        labels, (bucket, *sums) = found_row[: len(keys)], found_row[len(keys) :]
        row: dict[str, Any] = {**dict(zip(SUMS, sums, strict=True)), **dict.fromkeys(COLUMNS, 0)}
        row[COLUMNS[bucket]] = row["requests"]
        for column, label in zip(keys, labels, strict=True):
            row["model" if column == "r.model" else "key_id"] = label if label is not None else ""
        if day is not None:
            row["day"] = day
        out.append(row)
    return out
