"""The SQLite store facade the rest of the gateway uses: open, migrate, write, read."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from server.settings import StorageSettings
from server.store.protocol import (
    BodyRecord,
    Closing,
    Committed,
    Event,
    IdempotencyRecord,
    Intent,
    Interrupted,
    Loaded,
    Recovery,
    Refusal,
    StripeResult,
)
from server.store.sqlite import backup, billing, bodies, catalog, idempotency, ledger, records, rollups, totals
from server.store.sqlite.db import Writer, connect
from server.store.sqlite.media import SqliteMedia
from server.store.sqlite.migrations import migrate
from server.store.sqlite.reads import Reader
from server.store.sqlite.webhooks import SqliteWebhooks

Recover = Callable[[Interrupted], Recovery]


def prepare(
    path: Path,
    chain: ledger.Chain,
    *,
    rekey_from: ledger.Chain | None = None,
    month_start_ms: int = 0,
    recover: Recover | None = None,
) -> Loaded:
    """Create/migrate the database, re-key a ledger from before keyed chains (when `rekey_from` is given),
    close crash-interrupted requests (each as `recover` rules), and load what the server keeps in memory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    try:
        migrate(conn)
        if rekey_from is not None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                ledger.rekey(conn, rekey_from, chain)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        pending = records.interrupted(conn)
        if pending and recover is not None:
            conn.execute("BEGIN IMMEDIATE")
            records.recover(conn, chain, [recover(item) for item in pending])
            conn.execute("COMMIT")
        spend_project, spend_key = records.month_spend(conn, month_start_ms)
        projects = catalog.load_projects(conn)
        return Loaded(
            projects=projects,
            keys=catalog.load_keys(conn),
            admin_hashes=catalog.load_admin_token_hashes(conn),
            balances={p["id"]: p["balance_micro"] for p in projects},
            spend_project=spend_project,
            spend_key=spend_key,
            open_holds=records.open_holds(conn),
            interrupted=pending,
        )
    finally:
        conn.close()


def add_admin_token(path: Path, token_id: str, token_hash: str, prefix: str, when_ms: int) -> None:
    """Used by `gatewayctl init` (a local file operation, before any server runs)."""
    conn = connect(path)
    try:
        migrate(conn)
        conn.execute("BEGIN IMMEDIATE")
        catalog.insert_admin_token(conn, token_id, token_hash, prefix, when_ms)
        conn.execute("COMMIT")
    finally:
        conn.close()


def has_admin_token(path: Path) -> bool:
    if not path.exists():
        return False
    conn = connect(path)
    try:
        migrate(conn)
        return bool(catalog.load_admin_token_hashes(conn))
    finally:
        conn.close()


class SqliteStore:
    def __init__(self, path: Path, storage: StorageSettings, chain: ledger.Chain) -> None:
        self.path = path
        self.chain = chain
        self._storage = storage
        self.writer = Writer(
            path,
            storage.synchronous,
            storage.busy_timeout_ms,
            storage.max_batch,
            min_free_bytes=storage.min_free_mb << 20,
            wal_limit_bytes=storage.wal_limit_mb << 20,
        )
        self.bodies_path = path.with_name(bodies.FILE_NAME)
        self.body_writer = Writer(
            self.bodies_path,
            bodies.SYNCHRONOUS,
            storage.busy_timeout_ms,
            storage.max_batch,
            min_free_bytes=storage.min_free_mb << 20,
            wal_limit_bytes=storage.wal_limit_mb << 20,
        )
        self.reader = Reader(path, storage.busy_timeout_ms, attach={"bodies": self.bodies_path})
        self.webhooks = SqliteWebhooks(self.writer, self.reader)
        self.media = SqliteMedia(self.writer, self.reader)

    async def open(self, month_start_ms: int, recover: Recover, rekey_from: ledger.Chain | None = None) -> Loaded:
        loaded = await asyncio.to_thread(
            prepare, self.path, self.chain, rekey_from=rekey_from, month_start_ms=month_start_ms, recover=recover
        )
        body_bytes = await asyncio.to_thread(bodies.prepare, self.bodies_path, self._storage.busy_timeout_ms)
        self.writer.start()
        self.body_writer.start()
        await self.reader.open()
        return replace(loaded, body_bytes=body_bytes)

    async def close(self) -> None:
        await self.writer.stop()
        await self.body_writer.stop()
        await self.reader.close()

    @property
    def healthy(self) -> bool:
        """The store can take writes now (requests may be forwarded)."""
        return self.writer.healthy

    @property
    def problem(self) -> str | None:
        return self.writer.problem if self.writer.running else "the store writer is not running"

    def on_recovered(self, callback: Callable[[], None]) -> None:
        self.writer.on_recovered = callback

    @property
    def queued_writes(self) -> int:
        return self.writer.queued

    def on_commit(self, callback: Callable[[float], None]) -> None:
        self.writer.on_commit = callback

    async def hold_lease(self, name: str) -> bool:
        """One process owns a SQLite store: it does every piece of background work."""
        return True

    def record_intent(self, intent: Intent) -> asyncio.Future[Any]:
        """A unary call's intent may wait for company (its closing follows within milliseconds and shares the
        commit); a stream's is committed at once, since its first byte waits for it."""
        return self.writer.submit(records.insert_intent(intent), lazy=not intent.call.stream)

    def record_closing(self, closing: Closing) -> asyncio.Future[Any]:
        return self.writer.submit(records.close(closing, self.chain))

    def checkpoint(self, request_id: str, delivered_chars: int, when_ms: int, usage: Any = None) -> None:
        """A stream's progress; lazy and not awaited (a lost checkpoint only makes a crash bill less)."""
        future = self.writer.submit(records.checkpoint(request_id, delivered_chars, when_ms, usage), lazy=True)
        future.add_done_callback(lambda done: done.cancelled() or done.exception())

    async def create_project(self, row: dict[str, Any]) -> None:
        await self.writer.run(catalog.insert_project(row))

    async def create_key(self, row: dict[str, Any]) -> None:
        await self.writer.run(catalog.insert_key(row))

    async def revoke_key(self, key_id: str, when_ms: int, events: tuple[Event, ...] = ()) -> int:
        """Revoke a key and write the events announcing it, in one transaction."""
        revoke = catalog.revoke_key(key_id, when_ms)

        def op(conn: Any) -> int:
            changed = int(revoke(conn))
            if changed:
                records.insert_events(conn, events)
            return changed

        return int(await self.writer.run(op))

    async def update_project(self, project_id: str, **values: Any) -> None:
        await self.writer.run(catalog.update_project(project_id, **values))

    async def touch_keys(self, last_used: list[tuple[int, str]]) -> None:
        await self.writer.run(catalog.touch_keys(last_used))

    async def update_key_scopes(self, key_id: str, scopes: dict[str, Any], expires_ms: int | None) -> None:
        await self.writer.run(catalog.update_key_scopes(key_id, scopes, expires_ms))

    async def rotate_key(
        self, key_id: str, new_hash: str, prefix: str, prev_hash: str | None, prev_valid_until_ms: int | None
    ) -> None:
        await self.writer.run(catalog.rotate_key(key_id, new_hash, prefix, prev_hash, prev_valid_until_ms))

    def add_events(self, events: tuple[Event, ...]) -> asyncio.Future[Any]:
        return self.writer.submit(records.add_events(events))

    async def append_ledger(
        self,
        project_id: str,
        kind: str,
        source_id: str,
        amount_micro: int,
        memo: str,
        when_ms: int,
        events: tuple[Event, ...] = (),
    ) -> tuple[dict[str, Any], bool]:
        """(entry, True) for a new entry, written with `events`; (the entry already recorded under (kind,
        source_id), False) otherwise: nothing happens twice, and a retry can tell whether it repeated."""

        def op(conn: Any) -> tuple[dict[str, Any], bool]:
            found = ledger.find(conn, kind, source_id)
            if found is not None:
                return found, False
            entry = ledger.append(conn, self.chain, project_id, kind, source_id, amount_micro, memo, when_ms)
            records.insert_events(conn, events)
            return entry, True

        return await self.writer.run(op)

    def record_bodies(self, records: Sequence[BodyRecord], trim_bytes: int) -> asyncio.Future[Any]:
        return self.body_writer.submit(bodies.insert(records, trim_bytes))

    async def purge_bodies(self, before_ms: int) -> int:
        return int(await self.body_writer.run(bodies.purge(before_ms)))

    async def read_bodies(self, request_id: str) -> dict[str, Any] | None:
        return await self.reader.call(lambda conn: bodies.read(conn, request_id), self.bodies_path)

    async def list_requests(self, filters: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        return await self.reader.list_requests(filters, limit)

    async def idempotent_answer(self, project_id: str, key: str, now_ms: int) -> IdempotencyRecord | None:
        return await self.reader.call(lambda conn: idempotency.find(conn, project_id, key, now_ms))

    async def purge_idempotency(self, now_ms: int) -> int:
        return int(await self.writer.run(idempotency.purge(now_ms)))

    async def flush(self) -> None:
        await self.writer.run(lambda conn: None)
        await self.body_writer.run(lambda conn: None)

    async def backup(self) -> tuple[Path, dict[str, Any]]:
        """A consistent copy beside the database (see backup.py), checked; the caller removes the file."""
        folder, storage = self.path.parent, self._storage

        def run() -> tuple[Path, dict[str, Any]]:
            backup.clear_stale_parts(folder)
            backup.room_for_copy(self.path, storage.min_free_mb << 20)
            target = folder / f"gateway-{secrets.token_hex(6)}.db{backup.PART_SUFFIX}"
            try:
                backup.take(self.path, target, storage.busy_timeout_ms)
                return target, backup.check(target, self.chain)
            except BaseException:
                target.unlink(missing_ok=True)
                raise

        return await asyncio.to_thread(run)

    async def backlog(self) -> dict[str, Any]:
        def read(conn: Any) -> dict[str, Any]:
            holds = conn.execute(
                "SELECT COUNT(*), MIN(created_ms), COALESCE(SUM(micro), 0) FROM holds WHERE status = 'open'"
            ).fetchone()
            outbox = conn.execute(  # the outbox's consumers are webhook endpoints: what waits is their deliveries
                "SELECT COUNT(*), MIN(event_ms) FROM webhook_deliveries WHERE status = 'pending'"
            ).fetchone()
            newest = conn.execute(
                "SELECT MAX(t) FROM (SELECT MAX(started_ms) AS t FROM requests UNION ALL"
                " SELECT MAX(created_ms) FROM ledger) AS newest"
            ).fetchone()
            return {
                "newest_record_ms": newest[0],
                "open_holds": holds[0],
                "open_holds_oldest_ms": holds[1],
                "open_holds_micro": holds[2],
                "outbox_pending": outbox[0],
                "outbox_oldest_ms": outbox[1],
            }

        return await self.reader.call(read)

    async def create_topup_order(self, order: dict[str, Any]) -> None:
        await self.writer.run(billing.insert_order(order))

    async def credit_topup(
        self, event_id: str, event_type: str, facts: dict[str, Any], when_ms: int, refusal: Refusal
    ) -> StripeResult:
        return await self.writer.run(billing.credit_topup(self.chain, refusal, event_id, event_type, facts, when_ms))

    async def refund(
        self,
        event_id: str,
        event_type: str,
        charge_id: str,
        payment_intent: str | None,
        refunded_micro: int,
        when_ms: int,
    ) -> StripeResult:
        op = billing.refund(self.chain, event_id, event_type, charge_id, payment_intent, refunded_micro, when_ms)
        return await self.writer.run(op)

    async def settle_invoice(
        self, event_id: str, event_type: str, stripe_invoice_id: str, when_ms: int
    ) -> StripeResult:
        return await self.writer.run(
            billing.settle_invoice(self.chain, event_id, event_type, stripe_invoice_id, when_ms)
        )

    async def ignore_stripe_event(self, event_id: str, event_type: str, when_ms: int) -> StripeResult:
        return await self.writer.run(billing.ignore_event(event_id, event_type, when_ms))

    async def number_invoice(
        self,
        project_id: str,
        month: str,
        subtotal_micro: int,
        tax_micro: int,
        prefix: str,
        frozen: dict[str, Any],
        when_ms: int,
    ) -> dict[str, Any]:
        """A closed month's invoice: numbered once (race-free counter) with its totals and terms frozen."""
        op = billing.ensure_invoice(project_id, month, subtotal_micro, tax_micro, prefix, frozen, when_ms)
        return await self.writer.run(op)

    async def set_stripe_invoice(self, invoice_id: str, stripe_invoice_id: str) -> None:
        await self.writer.run(billing.set_stripe_invoice(invoice_id, stripe_invoice_id))

    async def projects_with_entries(self, start_ms: int, end_ms: int) -> list[str]:
        return await self.reader.call(lambda conn: billing.projects_with_entries(conn, start_ms, end_ms))

    async def invoice_data(self, project_id: str, start_ms: int, end_ms: int) -> dict[str, Any]:
        return await self.reader.call(lambda conn: billing.invoice_data(conn, project_id, start_ms, end_ms))

    async def usage_totals(
        self, since_ms: int, by: str = "model", project_id: str | None = None
    ) -> list[dict[str, Any]]:
        return await self.reader.usage_totals(since_ms, by, project_id)

    async def committed_totals(self, since_ms: int, request_ids: Sequence[str]) -> Committed:
        return await self.reader.call(lambda conn: totals.committed(conn, since_ms, request_ids))

    async def requests_matching(self, ref: str, limit: int = 50) -> list[dict[str, Any]]:
        return await self.reader.requests_matching(ref, limit)

    async def session_responses(self, session_id: str) -> list[dict[str, Any]]:
        return await self.reader.session_responses(session_id)

    async def usage_window(
        self,
        project_id: str,
        start_ms: int,
        end_ms: int,
        model: str | None,
        key_id: str | None,
        group_by: Sequence[str],
        days: Sequence[tuple[str, int, int]],
    ) -> list[dict[str, Any]]:
        return await self.reader.call(
            lambda conn: rollups.window(conn, project_id, start_ms, end_ms, model, key_id, group_by, days)
        )

    async def ledger_history(self, project_id: str, limit: int) -> list[dict[str, Any]]:
        return await self.reader.call(lambda conn: ledger.history(conn, project_id, limit))

    async def verify_ledger(self) -> list[dict[str, Any]]:
        return await self.reader.call(lambda conn: ledger.verify(conn, self.chain))

    async def ledger_states(self, at_ms: int) -> list[dict[str, Any]]:
        """Every project's ledger as it stood at `at_ms` (count, balance, head): what a checkpoint signs."""

        def read(conn: Any) -> list[dict[str, Any]]:
            return [ledger.state_at(conn, project["id"], at_ms) for project in ledger.projects(conn)]

        return await self.reader.call(read)

    async def ledger_entries(self, project_id: str) -> list[dict[str, Any]]:
        return await self.reader.call(lambda conn: ledger.entries(conn, project_id))
