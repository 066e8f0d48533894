"""Read queries for the admin API, on their own aiosqlite connection (WAL lets them run beside writes)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import orjson

T = TypeVar("T")

_GROUPS = {
    "model": "u.model",
    "key": "u.key_id",
    "project": "u.project_id",
    "day": "date(u.created_ms / 1000, 'unixepoch')",
}


class Reader:
    def __init__(self, path: Path, busy_timeout_ms: int = 5000) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: aiosqlite.Connection | None = None

    async def open(self) -> None:
        self._conn = await aiosqlite.connect(self._path)
        self._conn.row_factory = aiosqlite.Row
        await self._conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        await self._conn.execute("PRAGMA query_only=ON")

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a synchronous read on its own read-only connection, off the event loop."""

        def run() -> T:
            conn = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True)
            try:
                conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
                return fn(conn)
            finally:
                conn.close()

        return await asyncio.to_thread(run)

    async def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        assert self._conn is not None
        async with self._conn.execute(sql, args) as cur:
            return [dict(row) for row in await cur.fetchall()]

    async def usage_totals(
        self, since_ms: int, by: str = "model", project_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Requests, tokens and cost grouped by `by` (model, key, project or day) since a time."""
        group = _GROUPS[by]
        where = "u.created_ms >= ?"
        args: list[Any] = [since_ms]
        if project_id:
            where += " AND u.project_id = ?"
            args.append(project_id)
        return await self._all(
            f"SELECT {group} AS {by}, COUNT(*) AS requests, SUM(u.input_tokens) AS input_tokens,"
            f" SUM(u.output_tokens) AS output_tokens, SUM(u.cached_tokens) AS cached_tokens,"
            f" SUM(u.cost_micro) AS cost_micro FROM usage u WHERE {where} GROUP BY {group} ORDER BY {group}",
            tuple(args),
        )

    async def requests_matching(self, ref: str, limit: int = 50) -> list[dict[str, Any]]:
        """Request rows with their usage, newest first: the one with gateway id `ref`, or every one whose
        client x-request-id is `ref` (clients may reuse an id)."""
        rows = await self._all(
            "SELECT r.*, u.input_tokens, u.output_tokens, u.cached_tokens, u.cost_micro, u.price_card,"
            " u.estimated FROM requests r LEFT JOIN usage u ON u.request_id = r.id"
            " WHERE r.id = ? OR r.client_request_id = ? ORDER BY r.started_ms DESC, r.rowid DESC LIMIT ?",
            (ref, ref, limit),
        )
        for row in rows:
            row["attempts"] = orjson.loads(row["attempts"]) if row["attempts"] else []
            row["price_card"] = orjson.loads(row["price_card"]) if row["price_card"] else None
            row["stream"] = bool(row["stream"])
        return rows
