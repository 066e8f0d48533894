"""The PostgreSQL store: the SQLite store's operations (server/store/sqlite/store.py) on a database a
fleet of gateway processes shares, chosen by `[store] url = "postgresql://…"`.

Every write is the same operation function of the shared query modules (records, ledger, billing,
webhooks, media, idempotency, rollups, bodies), run through the dialect translation (dialect.py) by a
writer thread with its own connection (writer.py) in group transactions; reads use a small pool
(reader.py). What only a fleet needs is in fleet.py: this process's instance row and its heartbeat, the
closing of a dead process's pending requests, and leases on background work. Request bodies live in a
table of the same database, written by a second writer (so their bytes never ride a usage commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg

from server.clock import now_ms
from server.settings import StorageSettings, StoreSettings
from server.store.postgres import fleet
from server.store.postgres.copy import safe_url
from server.store.postgres.dialect import PgConnection
from server.store.postgres.migrations import migrate
from server.store.postgres.reader import PgReader
from server.store.postgres.writer import PgWriter, connect
from server.store.protocol import BackupRefused, BodyRecord, Interrupted, Loaded, Recovery, StoreUnavailable
from server.store.sqlite import bodies, catalog, ledger, records
from server.store.sqlite.media import SqliteMedia
from server.store.sqlite.store import SqliteStore
from server.store.sqlite.webhooks import SqliteWebhooks

log = logging.getLogger("gateway.store")

Recover = Callable[[Interrupted], Recovery]


def new_instance_id() -> str:
    return f"ins_{secrets.token_hex(8)}"


def prepare(
    url: str,
    chain: ledger.Chain,
    instance: str,
    ttl_ms: int,
    *,
    rekey_from: ledger.Chain | None = None,
    month_start_ms: int = 0,
    recover: Recover | None = None,
) -> Loaded:
    """Migrate, register this process, close the pending requests of processes that are gone (each as
    `recover` rules), adopt their open job and session holds (a live process's stay its own), and load
    what the server keeps in memory."""
    conn = connect(url, instance, "gateway-start")
    try:
        migrate(conn.raw)
        if rekey_from is not None and conn.execute("SELECT 1 FROM ledger LIMIT 1").fetchone() is not None:
            raise ValueError(  # a new ledger key beside a ledger written with another: never re-key in place here
                "the ledger key was just created but the PostgreSQL ledger has entries: restore the key it was"
                " written with (ledger.key beside the config)"
            )
        with conn.raw.transaction():
            fleet.register(instance, now_ms())(conn)
        pending: list[Interrupted] = []
        if recover is not None:
            with conn.raw.transaction():
                pending = fleet.reap(instance, now_ms(), ttl_ms, chain, recover)(conn)
        with conn.raw.transaction():
            adopted = fleet.adopt_holds(instance)(conn)
        spend_project, spend_key = records.month_spend(conn, month_start_ms)
        projects = catalog.load_projects(conn)
        return Loaded(
            projects=projects,
            keys=catalog.load_keys(conn),
            admin_hashes=catalog.load_admin_token_hashes(conn),
            balances={p["id"]: p["balance_micro"] for p in projects},
            spend_project=spend_project,
            spend_key=spend_key,
            open_holds=[hold for hold in records.open_holds(conn) if hold.id in adopted],
            interrupted=pending,
            body_bytes=int(conn.execute("SELECT COALESCE(SUM(bytes), 0) FROM request_bodies").fetchone()[0]),
        )
    finally:
        conn.close()


def _reachable(url: str) -> PgConnection:
    """A connection for a one-off command (init); an unreachable database is StoreUnavailable, one line."""
    try:
        return connect(url)
    except psycopg.Error as exc:
        text = str(exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
        raise StoreUnavailable(f"cannot use {safe_url(url)}: {reason}") from None


def add_admin_token(url: str, token_id: str, token_hash: str, prefix: str, when_ms: int) -> None:
    """Used by `gatewayctl init` when the store is PostgreSQL."""
    conn = _reachable(url)
    try:
        migrate(conn.raw)
        with conn.raw.transaction():
            catalog.insert_admin_token(conn, token_id, token_hash, prefix, when_ms)
    finally:
        conn.close()


def has_admin_token(url: str) -> bool:
    conn = _reachable(url)
    try:
        migrate(conn.raw)
        return bool(catalog.load_admin_token_hashes(conn))
    finally:
        conn.close()


def inspect(url: str) -> dict[str, Any]:
    """What `gatewayctl doctor` reports about a PostgreSQL store, without changing it: migrations applied
    and pending, live gateway processes, the server's version. Raises StoreUnavailable when unreachable."""
    from server.store.postgres.migrations import MIGRATIONS

    conn = _reachable(url)
    try:
        version = conn.raw.execute("SHOW server_version").fetchone()[0]
        exists = conn.raw.execute("SELECT to_regclass('_migrations') IS NOT NULL").fetchone()[0]
        done = {row[0] for row in conn.raw.execute("SELECT name FROM _migrations").fetchall()} if exists else set()
        live = conn.raw.execute("SELECT COUNT(*) FROM instances").fetchone()[0] if "pg_002_fleet" in done else 0
        return {
            "server_version": version,
            "applied": len(done),
            "pending": [name for name, _ in MIGRATIONS if name not in done],
            "unknown": sorted(done - {name for name, _ in MIGRATIONS}),
            "instances": live,
        }
    finally:
        conn.close()


class PostgresStore(SqliteStore):
    """The Store protocol on PostgreSQL: the SQLite store's operations, on a writer and reader of its own."""

    def __init__(self, settings: StoreSettings, storage: StorageSettings, chain: ledger.Chain) -> None:
        self.url = settings.url
        self.path = Path("postgresql")
        self.chain = chain
        self._storage = storage
        self.instance = new_instance_id()
        self.ttl_ms = int(settings.instance_ttl_s * 1000)
        self.writer = PgWriter(self.url, self.instance, storage.max_batch)
        self.body_writer = PgWriter(self.url, self.instance, storage.max_batch, name="gateway-bodies")
        self.bodies_path = None
        self.reader = PgReader(self.url, settings.pool_size)
        self.webhooks = SqliteWebhooks(self.writer, self.reader)
        self.media = SqliteMedia(self.writer, self.reader)
        self._recover: Recover | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._leases: dict[str, float] = {}  # lease name -> monotonic time until which we hold it
        self.reaped = 0  # requests of dead processes this process closed
        self._lease_conn: Any = None  # the renewer thread's own
        self._renewer: threading.Thread | None = None
        self._stopping = threading.Event()

    async def open(self, month_start_ms: int, recover: Recover, rekey_from: ledger.Chain | None = None) -> Loaded:
        self._recover = recover
        loaded = await asyncio.to_thread(
            prepare,
            self.url,
            self.chain,
            self.instance,
            self.ttl_ms,
            rekey_from=rekey_from,
            month_start_ms=month_start_ms,
            recover=recover,
        )
        self.writer.start()
        self.body_writer.start()
        await self.reader.open()
        self._renewer = threading.Thread(target=self._renew_loop, name="gateway-instance-lease", daemon=True)
        self._renewer.start()
        self._heartbeat = asyncio.create_task(self._beat(), name="gateway-fleet-round")
        return loaded

    async def close(self) -> None:
        self._stopping.set()
        if self._renewer is not None:
            await asyncio.to_thread(self._renewer.join, 10)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        if self.writer.running:
            with contextlib.suppress(Exception):
                await self.writer.run(fleet.leave(self.instance))
        if self._lease_conn is not None:
            with contextlib.suppress(Exception):
                self._lease_conn.close()
        await self.writer.stop()
        await self.body_writer.stop()
        await self.reader.close()

    def _renew_loop(self) -> None:
        """Renew this process's lease every ttl/4 on a thread and a connection of its own: neither a busy
        writer nor a stalled event loop makes a live process look dead."""
        while not self._stopping.wait(self.ttl_ms / 4000):
            try:
                if not self._renew():
                    log.error("this process was taken for dead (its lease expired): its pending requests were closed")
            except Exception as exc:
                log.warning("instance lease not renewed: %r", exc)

    def _renew(self) -> bool:
        if self._lease_conn is None or self._lease_conn.raw.closed or self._lease_conn.raw.broken:
            self._lease_conn = connect(self.url, self.instance, "gateway-lease")
        with self._lease_conn.raw.transaction():
            return fleet.renew(self.instance, now_ms())(self._lease_conn)

    async def beat(self) -> int:
        """Close the requests of processes whose lease expired; returns how many were closed."""
        assert self._recover is not None
        closed = await self.writer.run(fleet.reap(self.instance, now_ms(), self.ttl_ms, self.chain, self._recover))
        if closed:
            self.reaped += len(closed)
            log.warning("closed %d requests left pending by a gateway process that died", len(closed))
        return len(closed)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 4000)
            try:
                await self.beat()
            except Exception as exc:
                log.warning("dead processes' requests not closed this round: %r", exc)

    async def hold_lease(self, name: str) -> bool:
        """Whether this process does the background work `name` now (taking or renewing its lease)."""
        now = time.monotonic()
        if self._leases.get(name, 0.0) - self.ttl_ms / 2000 > now:
            return True
        held = bool(await self.writer.run(fleet.take_lease(name, self.instance, now_ms(), self.ttl_ms)))
        if held:
            self._leases[name] = now + self.ttl_ms / 1000
        else:
            self._leases.pop(name, None)
        return held

    def record_bodies(self, records: Sequence[BodyRecord], trim_bytes: int) -> asyncio.Future[Any]:
        return self.body_writer.submit(bodies.insert(records, trim_bytes))

    async def read_bodies(self, request_id: str) -> dict[str, Any] | None:
        return await self.reader.call(lambda conn: bodies.read(conn, request_id))

    async def backup(self) -> tuple[Path, dict[str, Any]]:
        raise BackupRefused("the store is PostgreSQL: back it up with pg_dump (or your database's own backups)")
