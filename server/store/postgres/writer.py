"""The PostgreSQL writer: the SQLite writer's thread and group commit (server/store/sqlite/db.py), on one
psycopg connection of its own, with PostgreSQL's notions of "cannot take writes" and of a retry.

What differs from SQLite, and why:
- `BEGIN` instead of `BEGIN IMMEDIATE`: other processes write beside this one; the row lock on a project
  (`SELECT … FOR UPDATE` in ledger.append) serialises its chain and balance across the fleet;
- a deadlock or a serialization failure (two processes' groups locking two projects in opposite orders)
  aborts a group: it is re-run op by op, as any failed group is, and a single op so aborted is run again
  (up to `RETRIES` times) before its caller sees the error;
- the store is unwritable when the connection is lost, the server shuts down or refuses for lack of
  resources (disk full): every op of that group fails with StoreUnavailable (503 on the request path) and
  the idle probe (`SELECT 1`, reconnecting when needed) notices when the server is back;
- the session setting `gateway.instance` names this process on every request and hold row it writes (the
  column default), so a process that dies leaves rows another process can close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors

from server.store.postgres.dialect import PgConnection
from server.store.sqlite.db import Writer

log = logging.getLogger("gateway.store")

RETRIES = 3
_RETRYABLE = (errors.DeadlockDetected, errors.SerializationFailure, errors.LockNotAvailable)
_UNAVAILABLE = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    errors.InsufficientResources,
    errors.AdminShutdown,
    errors.ReadOnlySqlTransaction,
)


def connect(url: str, instance: str | None = None, application: str = "gateway") -> PgConnection:
    """An autocommit psycopg connection (transactions are begun explicitly), seen as a sqlite3 one."""
    raw = psycopg.connect(url, autocommit=True, connect_timeout=5, application_name=application)
    if instance is not None:
        raw.execute("SELECT set_config('gateway.instance', %s, false)", (instance,))
    return PgConnection(raw)


class PgWriter(Writer):
    """One writer thread per process on its own connection; group commit as on SQLite."""

    def __init__(self, url: str, instance: str, max_batch: int = 512, name: str = "gateway-writer") -> None:
        super().__init__(Path("."), max_batch=max_batch)
        self._url = url
        self._instance = instance
        self._name = name
        self._conn: PgConnection | None = None

    def _open(self) -> tuple[Any, Callable[[], None]]:
        self._conn = connect(self._url, self._instance, self._name)
        conn = self._conn

        def finish() -> None:
            with contextlib.suppress(Exception):
                conn.close()

        return conn, finish

    def _unavailable(self, exc: BaseException) -> str | None:
        if isinstance(exc, _RETRYABLE):
            return None
        if isinstance(exc, (*_UNAVAILABLE, OSError)):
            return f"postgresql: {str(exc).strip() or type(exc).__name__}"
        return None

    def _rollback(self, conn: Any) -> None:
        if not conn.raw.closed and conn.in_transaction:
            with contextlib.suppress(psycopg.Error):
                conn.raw.execute("ROLLBACK")

    def _begin(self, conn: Any) -> None:
        if conn.raw.closed or conn.raw.broken:
            self._reconnect(conn)
        conn.raw.execute("BEGIN")

    def _reconnect(self, conn: PgConnection) -> None:
        with contextlib.suppress(Exception):
            conn.raw.close()
        fresh = connect(self._url, self._instance, self._name)
        conn.raw = fresh.raw

    def _probe(self, conn: Any) -> str | None:
        try:
            if conn.raw.closed or conn.raw.broken:
                self._reconnect(conn)
            conn.raw.execute("SELECT 1")
        except Exception as exc:
            return self._unavailable(exc) or str(exc)
        return None

    def _bound_wal(self, conn: Any) -> None:
        """Nothing to do: PostgreSQL checkpoints its own WAL."""

    def _transaction(
        self, conn: Any, batch: list[tuple[Any, asyncio.Future[Any]]], isolate: bool
    ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
        results = super()._transaction(conn, batch, isolate)
        for attempt in range(RETRIES):
            if not (isolate and any(isinstance(error, _RETRYABLE) for _, _, error in results)):
                break
            log.warning("an operation lost a lock race (%s); running it again", type(results[0][2]).__name__)
            time.sleep(0.01 * (attempt + 1))
            results = super()._transaction(conn, batch, isolate)
        return results
