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
    def __init__(self, path: Path, busy_timeout_ms: int = 5000, attach: dict[str, Path] | None = None) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._attach = attach or {}  # schema name -> database file, readable beside the main one
        self._conn: aiosqlite.Connection | None = None

    async def open(self) -> None:
        self._conn = await aiosqlite.connect(self._path)
        self._conn.row_factory = aiosqlite.Row
        await self._conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        for name, path in self._attach.items():
            await self._conn.execute(f"ATTACH DATABASE ? AS {name}", (str(path),))
        await self._conn.execute("PRAGMA query_only=ON")

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def call(self, fn: Callable[[sqlite3.Connection], T], path: Path | None = None) -> T:
        """Run a synchronous read on its own read-only connection (to the main database, or `path`), off
        the event loop."""

        def run() -> T:
            conn = sqlite3.connect(f"file:{path or self._path}?mode=ro", uri=True)
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

    async def list_requests(self, filters: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        """Request rows with their usage, newest first, narrowed by `filters` (project_id, key_id, model,
        status: a request status or "failed" for any finished non-ok one, since_ms, until_ms)."""
        where, args = ["1 = 1"], []
        for name in ("project_id", "key_id", "model"):
            if filters.get(name):
                where.append(f"r.{name} = ?")
                args.append(filters[name])
        status = filters.get("status")
        if status == "failed":
            where.append("r.status NOT IN ('ok', 'pending')")
        elif status:
            where.append("r.status = ?")
            args.append(status)
        if filters.get("since_ms"):
            where.append("r.started_ms >= ?")
            args.append(filters["since_ms"])
        if filters.get("until_ms"):
            where.append("r.started_ms < ?")
            args.append(filters["until_ms"])
        rows = await self._all(
            f"SELECT {_REQUEST_COLUMNS} FROM requests r LEFT JOIN usage u ON u.request_id = r.id"
            f" WHERE {' AND '.join(where)} ORDER BY r.started_ms DESC, r.rowid DESC LIMIT ?",
            (*args, limit),
        )
        return [_request_row(row) for row in rows]

    async def requests_matching(self, ref: str, limit: int = 50) -> list[dict[str, Any]]:
        """Request rows with their usage, newest first: the one with gateway id `ref`, or every one whose
        client x-request-id is `ref` (clients may reuse an id); failing both, those whose gateway id starts
        with `ref` (at least MIN_PREFIX characters: the short ids tables show)."""
        rows = await self._all(
            f"SELECT {_REQUEST_COLUMNS} FROM requests r LEFT JOIN usage u ON u.request_id = r.id"
            " WHERE r.id = ? OR r.client_request_id = ? ORDER BY r.started_ms DESC, r.rowid DESC LIMIT ?",
            (ref, ref, limit),
        )
        if not rows and len(ref) >= MIN_PREFIX:
            rows = await self._all(
                f"SELECT {_REQUEST_COLUMNS} FROM requests r LEFT JOIN usage u ON u.request_id = r.id"
                " WHERE r.id >= ? AND r.id < ? ORDER BY r.started_ms DESC, r.rowid DESC LIMIT ?",
                (ref, ref + "\uffff", limit),
            )
        return [_request_row(row) for row in rows]

    async def session_responses(self, session_id: str) -> list[dict[str, Any]]:
        """The responses of a realtime session, with their usage, oldest first."""
        rows = await self._all(
            f"SELECT {_REQUEST_COLUMNS} FROM requests r LEFT JOIN usage u ON u.request_id = r.id"
            " WHERE r.session_id = ? AND r.id != ? ORDER BY r.started_ms, r.rowid",
            (session_id, session_id),
        )
        return [_request_row(row) for row in rows]


MIN_PREFIX = 8
_REQUEST_COLUMNS = (
    "r.*, u.input_tokens, u.output_tokens, u.cached_tokens, u.cost_micro, u.price_card, u.estimated, u.quantities,"
    " EXISTS (SELECT 1 FROM bodies.request_bodies b WHERE b.request_id = r.id) AS has_bodies"
)


def _request_row(row: dict[str, Any]) -> dict[str, Any]:
    """A request row as the admin API shows it: attempts, price card and the quantities beyond tokens
    (images, seconds, characters, stored bytes) parsed, flags as booleans."""
    row["attempts"] = orjson.loads(row["attempts"]) if row["attempts"] else []
    row["price_card"] = orjson.loads(row["price_card"]) if row["price_card"] else None
    row["quantities"] = orjson.loads(row["quantities"]) if row.get("quantities") else {}
    row["stream"] = bool(row["stream"])
    row["has_bodies"] = bool(row["has_bodies"])
    row.pop("checkpoint_usage", None)  # a crash-recovery fact, not for display
    return row
