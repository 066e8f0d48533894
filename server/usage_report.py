"""Usage reports (/v1/usage) from rollup rows, and their latency histograms, as pure functions.

A request's latency falls in one of 25 buckets whose upper bounds grow ~1.6x from 1 ms to 63 s (the last
bucket is everything slower). Rollup rows keep one count per bucket, so p50/p95 over any window and any
grouping come from summed counts: the answer is interpolated geometrically inside the bucket that holds
the percentile, within ~25 % of the true value.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from server.money import credits_number

BOUNDS_MS = (
    1, 1.6, 2.5, 4, 6.3, 10, 16, 25, 40, 63, 100, 160, 250, 400, 630,
    1_000, 1_600, 2_500, 4_000, 6_300, 10_000, 16_000, 25_000, 63_000,
)  # fmt: skip
BUCKETS = len(BOUNDS_MS) + 1
COLUMNS = tuple(f"b{n:02d}" for n in range(BUCKETS))


def bucket_of(latency_ms: float) -> int:
    return bisect.bisect_left(BOUNDS_MS, latency_ms)


def percentile(counts: Sequence[int], q: float) -> float | None:
    """The q-quantile (0-1) of a histogram, in ms; None for an empty one."""
    total = sum(counts)
    if not total:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            low = BOUNDS_MS[index - 1] if index else 0.5
            high = BOUNDS_MS[index] if index < len(BOUNDS_MS) else BOUNDS_MS[-1] * 1.6
            share = (rank - seen) / count
            return round(math.exp(math.log(low) + share * (math.log(high) - math.log(low))), 1)
        seen += count
    return float(BOUNDS_MS[-1])


SUMS = ("requests", "errors", "input_tokens", "output_tokens", "cached_tokens", "cost_micro")
GROUPS = ("model", "key", "day")
_FIELDS = {"model": "model", "key": "key_id", "day": "day"}


def days_between(start_ms: int, end_ms: int, zone: str) -> list[tuple[str, int, int]]:
    """(label, start, end) of every calendar day in `zone` that [start_ms, end_ms) touches."""
    tz = ZoneInfo(zone)
    day = datetime.fromtimestamp(start_ms / 1000, tz).date()
    out = []
    while True:
        begins = int(datetime.combine(day, time(), tz).timestamp() * 1000)
        following = day + timedelta(days=1)
        ends = int(datetime.combine(following, time(), tz).timestamp() * 1000)
        out.append((day.isoformat(), begins, ends))
        if ends >= end_ms:
            return out
        day = following


def aggregate(found: list[dict[str, Any]], group_by: Sequence[str]) -> list[dict[str, Any]]:
    """Rows (sums and latency buckets, already carrying their group fields) merged per group, with p50/p95."""
    fields = [_FIELDS[name] for name in GROUPS if name in group_by]
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in found:
        ident = tuple(row[field] for field in fields)
        total = groups.get(ident)
        if total is None:
            total = groups[ident] = {**{f: row[f] for f in fields}, **dict.fromkeys(SUMS, 0), "_buckets": [0] * BUCKETS}
        for name in SUMS:
            total[name] += row[name] or 0
        buckets = total["_buckets"]
        for index, column in enumerate(COLUMNS):
            buckets[index] += row[column] or 0
    out = []
    for ident in sorted(groups, key=lambda key: tuple(str(part) for part in key)):
        total = groups[ident]
        counts = total.pop("_buckets")
        if not total["requests"]:
            continue
        total["cost"] = credits_number(total["cost_micro"])
        total["latency_ms"] = {"p50": percentile(counts, 0.50), "p95": percentile(counts, 0.95)}
        out.append(total)
    return out
