"""Reads on PostgreSQL: a small pool of connections (`[store] pool_size`), each used by one thread at a
time, behind the SQLite reader's interface, so the admin API's queries (server/store/sqlite/reads.py) and
the query modules' read functions run unchanged, translated (dialect.py)."""

from __future__ import annotations

import asyncio
import contextlib
import queue
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from server.store.postgres.dialect import PgConnection
from server.store.postgres.writer import connect
from server.store.sqlite.reads import Reader

T = TypeVar("T")


class PgReader(Reader):
    def __init__(self, url: str, size: int = 4, application: str = "gateway-reader") -> None:
        super().__init__(Path("."))
        self._url = url
        self._size = size
        self._application = application
        self._idle: queue.SimpleQueue[PgConnection] = queue.SimpleQueue()
        self._opened: list[PgConnection] = []

    async def open(self) -> None:
        """Connections are opened when first needed, up to `size`."""

    async def close(self) -> None:
        for conn in self._opened:
            with contextlib.suppress(Exception):
                conn.close()
        self._opened.clear()

    def _take(self) -> PgConnection:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        if len(self._opened) < self._size:
            conn = connect(self._url, application=self._application)
            self._opened.append(conn)
            return conn
        return self._idle.get(timeout=30)

    def _give(self, conn: PgConnection) -> None:
        if conn.raw.closed or conn.raw.broken:
            self._opened.remove(conn)
            with contextlib.suppress(Exception):
                conn.close()
            return
        self._idle.put(conn)

    def use(self, fn: Callable[[Any], T]) -> T:
        """Run `fn` on a pooled connection in the calling thread (a worker thread, never the event loop)."""
        conn = self._take()
        try:
            return fn(conn)
        except psycopg.OperationalError:
            conn.raw.close()
            raise
        finally:
            self._give(conn)

    async def call(self, fn: Callable[[Any], T], path: Path | None = None) -> T:
        """Run a synchronous read on a pooled connection, off the event loop (`path` is SQLite's: ignored)."""
        return await asyncio.to_thread(self.use, fn)

    async def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        def read(conn: PgConnection) -> list[dict[str, Any]]:
            cur = conn.execute(sql, args)
            names = [d[0] for d in cur.description or []]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

        return await self.call(read)  # PgCursor leaves out the PostgreSQL-only columns (rowid, owner)
