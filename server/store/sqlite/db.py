"""The single writer: one thread owns the write connection and group-commits queued operations.

Callers submit a function `op(conn) -> result`; the writer drains whatever is queued (up to
`max_batch`), runs it in one `BEGIN IMMEDIATE` transaction, commits once, and resolves every
caller's future. If an op raises (a duplicate source id, say), the group is rolled back and re-run
one op per transaction, so only that op fails; ops are plain functions of the connection, so
running one again is safe. With `synchronous=FULL` an acknowledged write survives a crash or power
loss; the cost of the fsync is shared by the whole group.

Health: the store is `writable` unless the last attempt found it locked by another process, out of
disk space (or below `min_free_bytes`), or failing I/O. While idle, and while not writable, the
writer probes every `probe_interval_s` (a `BEGIN IMMEDIATE` with a short lock wait, and the free
space of the disk), so the request path can refuse with 503 *before* forwarding anything upstream,
and recovers by itself when the lock or the space returns (`on_recovered` is then called on the loop).

Failure behaviour: a group that cannot commit fails every op in it with `StoreUnavailable` (the request
path turns that into a 503: fail closed on money). A lock is waited for up to `busy_timeout_ms` in
short steps, so the store is marked not writable within one step while the wait goes on.

The WAL is kept bounded: a helper thread checkpoints passively every `checkpoint_interval_s`, and when
the WAL file passes `wal_limit_bytes` the writer itself runs a TRUNCATE checkpoint between groups (no
other writer exists, so it completes unless a reader pins an old snapshot, and is retried after the
next group); `journal_size_limit` caps what is left after a reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from server.store.protocol import StoreUnavailable

log = logging.getLogger("gateway.store")

Op = Callable[[sqlite3.Connection], Any]
_STOP = object()
LOCK_STEP_MS = 200  # how long one attempt waits for another process's lock before the store is marked unwritable


def connect(path: Path, synchronous: str = "FULL", busy_timeout_ms: int = 5000) -> sqlite3.Connection:
    """A connection with the pragmas every gateway connection uses."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _unavailability(exc: BaseException) -> str | None:
    """Why an error means the store cannot take writes (None: the op itself is at fault)."""
    if isinstance(exc, OSError):
        return str(exc)
    if not isinstance(exc, sqlite3.OperationalError):
        return None
    text = str(exc).lower()
    for marker in (
        "locked",
        "busy",
        "disk is full",
        "database or disk is full",
        "disk i/o",
        "readonly",
        "unable to open",
    ):
        if marker in text:
            return str(exc)
    return None


class Writer:
    def __init__(
        self,
        path: Path,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 5000,
        max_batch: int = 512,
        *,
        min_free_bytes: int = 1 << 20,
        wal_limit_bytes: int = 32 << 20,
    ) -> None:
        self._path = path
        self._wal = Path(f"{path}-wal")
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._max_batch = max_batch
        self._min_free_bytes = min_free_bytes
        self.wal_limit_bytes = wal_limit_bytes
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.commits = 0
        self.lazy_window_s = 0.005
        self.checkpoint_interval_s = 0.5
        self.probe_interval_s = 0.25
        self._stopping = threading.Event()
        self._checkpointing = threading.Lock()  # one checkpoint at a time: a TRUNCATE never meets a PASSIVE
        self.running = False
        self.problem: str | None = None  # why the store is not writable, or None
        self.on_recovered: Callable[[], None] | None = None
        self.on_commit: Callable[[float], None] | None = None  # seconds of each group's transaction

    @property
    def queued(self) -> int:
        """Operations waiting for the writer thread now."""
        return self._queue.qsize()

    @property
    def healthy(self) -> bool:
        """The writer runs and the store can take writes: requests may be forwarded."""
        return self.running and self.problem is None

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
        if not self.running:
            future.set_exception(RuntimeError("store writer is not running"))
            return future
        self._queue.put((op, future, lazy))
        return future

    async def run(self, op: Op) -> Any:
        return await self.submit(op)

    def _checkpoint_loop(self) -> None:
        """Passive WAL checkpoints on their own connection, so the writer's commits rarely pay for them."""
        conn = connect(self._path, self._synchronous, self._busy_timeout_ms)
        try:
            while not self._stopping.wait(self.checkpoint_interval_s):
                try:
                    with self._checkpointing:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    log.exception("WAL checkpoint failed (will retry)")
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def _open(self) -> tuple[Any, Callable[[], None]]:
        """The writer's connection, and what to do once the writer stops (another engine overrides this)."""
        conn = connect(self._path, self._synchronous, LOCK_STEP_MS)
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute(f"PRAGMA journal_size_limit={self.wal_limit_bytes}")
        checkpointer = threading.Thread(target=self._checkpoint_loop, name="gateway-checkpoint", daemon=True)
        checkpointer.start()

        def finish() -> None:
            self._stopping.set()
            checkpointer.join(10)
            conn.close()

        return conn, finish

    def _unavailable(self, exc: BaseException) -> str | None:
        """Why an error means the store cannot take writes (None: the op itself is at fault)."""
        return _unavailability(exc)

    def _rollback(self, conn: Any) -> None:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def _run(self, ready: threading.Event) -> None:
        try:
            conn, finish = self._open()
        except Exception as exc:
            log.error("store writer cannot open its connection: %s", exc)
            self.problem = str(exc)
            ready.set()
            return
        self.running = True
        self._set_problem(self._probe(conn))
        ready.set()
        try:
            while True:
                try:
                    item = self._queue.get(timeout=self.probe_interval_s)
                except queue.Empty:
                    self._set_problem(self._probe(conn))  # idle: notice a lock or a full disk before a request does
                    continue
                if item is _STOP:
                    break
                batch, stop_after = self._gather(item)
                self._commit_group(conn, [(op, future) for op, future, _ in batch])
                self._bound_wal(conn)
                if stop_after:
                    break
        finally:
            self.running = False
            finish()

    def _gather(self, item: Any) -> tuple[list[Any], bool]:
        batch = [item]
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
                return batch, True
            batch.append(nxt)
            only_lazy = only_lazy and nxt[2]
        return batch, False

    def _probe(self, conn: sqlite3.Connection) -> str | None:
        """Why the store cannot take writes now, or None: free disk space, then the write lock."""
        try:
            free = shutil.disk_usage(self._path.parent).free
        except OSError as exc:
            return f"data dir unreadable: {exc}"
        if free < self._min_free_bytes:
            return f"disk almost full ({free} bytes free)"
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            self._rollback(conn)
            return _unavailability(exc) or str(exc)
        return None

    def _set_problem(self, problem: str | None) -> None:
        was = self.problem
        self.problem = problem
        if problem and not was:
            log.error("store cannot take writes: %s (requests are refused with 503 until it can)", problem)
        elif was and not problem:
            log.warning("store can take writes again")
            if self.on_recovered is not None and self._loop is not None:
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(self.on_recovered)

    def _bound_wal(self, conn: sqlite3.Connection) -> None:
        try:
            size = os.stat(self._wal).st_size
        except OSError:
            return
        if size > self.wal_limit_bytes:
            with self._checkpointing, contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

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

    def _begin(self, conn: sqlite3.Connection) -> None:
        """BEGIN IMMEDIATE, waiting for another process's lock up to busy_timeout_ms in short steps."""
        deadline = time.monotonic() + self._busy_timeout_ms / 1000
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                reason = _unavailability(exc)
                if reason is None or time.monotonic() >= deadline:
                    raise
                self._set_problem(reason)

    def _observe_commit(self, seconds: float) -> None:
        """Tell `on_commit` how long a group took; an observer that fails is logged, the commit stands."""
        if self.on_commit is None:
            return
        try:
            self.on_commit(seconds)
        except Exception:
            log.exception("commit observer failed (the group is committed)")

    def _transaction(
        self, conn: sqlite3.Connection, batch: list[tuple[Op, asyncio.Future[Any]]], isolate: bool
    ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        began = time.perf_counter()
        try:
            self._begin(conn)
            for op, future in batch:
                try:
                    results.append((future, op(conn), None))
                except Exception as exc:
                    if self._unavailable(exc) is not None:
                        raise
                    if not isolate:
                        raise _OpFailed from exc
                    raise
            conn.execute("COMMIT")
            self.commits += 1
            self._observe_commit(time.perf_counter() - began)
            if self.problem is not None:
                self._set_problem(None)
            return results
        except _OpFailed:
            self._rollback(conn)
            raise
        except Exception as exc:
            self._rollback(conn)
            reason = self._unavailable(exc)
            if reason is not None:
                self._set_problem(reason)
                failure: BaseException = StoreUnavailable(reason)
                log.error("group commit failed; %d operations refused: %s", len(batch), reason)
            else:
                failure = exc
                if not isolate:
                    log.exception("group commit failed; %d operations refused", len(batch))
            return [(future, None, failure) for _, future in batch]


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
