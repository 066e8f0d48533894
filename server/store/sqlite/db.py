"""The single writer: one thread owns the write connection and group-commits queued operations.

Callers submit a function `op(conn) -> result`; the writer drains whatever is queued (up to
`max_batch`), runs it in one `BEGIN IMMEDIATE` transaction, commits once, and resolves every
caller's future. If an op raises (a duplicate source id, say), the group is rolled back and re-run
one op per transaction, so only that op fails; ops are plain functions of the connection, so
running one again is safe. With `synchronous=FULL` an acknowledged write survives a crash or power loss; the cost of
the fsync is shared by the whole group.

Failure behaviour: if the commit itself fails, every op of the group fails and its callers see
the exception (the request path turns that into a 503: fail closed on money).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("gateway.store")

Op = Callable[[sqlite3.Connection], Any]
_STOP = object()


def connect(path: Path, synchronous: str = "FULL", busy_timeout_ms: int = 5000) -> sqlite3.Connection:
    """A connection with the pragmas every gateway connection uses."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class Writer:
    def __init__(self, path: Path, synchronous: str = "FULL", busy_timeout_ms: int = 5000, max_batch: int = 512):
        self._path = path
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.commits = 0
        self.lazy_window_s = 0.005
        self.checkpoint_interval_s = 0.5
        self._stopping = threading.Event()
        self.healthy = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="gateway-writer", daemon=True)
        self._thread.start()
        ready.wait(10)

    async def stop(self) -> None:
        if self._thread is None:
            return
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join, 30)
        self._thread = None

    def submit(self, op: Op, lazy: bool = False) -> asyncio.Future[Any]:
        """Queue `op`; the returned future resolves after the group containing it commits.

        A `lazy` op (a request's intent row) may wait up to `lazy_window_s` for company, so it
        usually shares the fsync of its own outcome instead of costing one more on the request path.
        """
        assert self._loop is not None, "writer not started"
        future: asyncio.Future[Any] = self._loop.create_future()
        if not self.healthy:
            future.set_exception(RuntimeError("store writer is not running"))
            return future
        self._queue.put((op, future, lazy))
        return future

    async def run(self, op: Op) -> Any:
        return await self.submit(op)

    def _checkpoint_loop(self) -> None:
        """WAL checkpoints on their own connection, so the writer's commits never pay for them."""
        conn = connect(self._path, self._synchronous, self._busy_timeout_ms)
        try:
            while not self._stopping.wait(self.checkpoint_interval_s):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    log.exception("WAL checkpoint failed (will retry)")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def _run(self, ready: threading.Event) -> None:
        conn = connect(self._path, self._synchronous, self._busy_timeout_ms)
        conn.execute("PRAGMA wal_autocheckpoint=0")
        checkpointer = threading.Thread(target=self._checkpoint_loop, name="gateway-checkpoint", daemon=True)
        checkpointer.start()
        self.healthy = True
        ready.set()
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    break
                batch = [item]
                stop_after = False
                only_lazy = item[2]
                deadline = time.monotonic() + self.lazy_window_s
                while len(batch) < self._max_batch:
                    try:
                        if only_lazy:
                            nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                        else:
                            nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stop_after = True
                        break
                    batch.append(nxt)
                    only_lazy = only_lazy and nxt[2]
                self._commit_group(conn, [(op, future) for op, future, _ in batch])
                if stop_after:
                    break
        finally:
            self.healthy = False
            self._stopping.set()
            checkpointer.join(10)
            conn.close()

    def _commit_group(self, conn: sqlite3.Connection, batch: list[tuple[Op, asyncio.Future[Any]]]) -> None:
        """All ops in one transaction; if any op fails, roll back and run each alone so it fails alone."""
        try:
            results = self._transaction(conn, batch, isolate=False)
        except _OpFailed:
            results = []
            for item in batch:
                results += self._transaction(conn, [item], isolate=True)
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # loop closed during shutdown: nobody is waiting any more
            self._loop.call_soon_threadsafe(_resolve_all, results)

    def _transaction(
        self, conn: sqlite3.Connection, batch: list[tuple[Op, asyncio.Future[Any]]], isolate: bool
    ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op, future in batch:
                try:
                    results.append((future, op(conn), None))
                except Exception as exc:
                    if not isolate:
                        raise _OpFailed from exc
                    raise
            conn.execute("COMMIT")
            self.commits += 1
            return results
        except _OpFailed:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        except Exception as exc:
            if not isolate:
                log.exception("group commit failed; %d operations refused", len(batch))
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return [(future, None, exc) for _, future in batch]


class _OpFailed(Exception):
    """One op of a group failed: the group is retried op by op."""


def _resolve_all(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, error in results:
        if future.done():
            continue
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)
