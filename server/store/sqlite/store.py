"""The SQLite store facade the rest of the gateway uses: open, migrate, write, read."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from server.settings import StorageSettings
from server.store.sqlite import catalog, ledger, records
from server.store.sqlite.db import Writer, connect
from server.store.sqlite.migrations import migrate
from server.store.sqlite.reads import Reader
from server.types import Call, Caller, Outcome


def prepare(path: Path, month_start_ms: int = 0) -> dict[str, Any]:
    """Create/migrate the database, close crash-interrupted intents, and load the catalog, the
    month's spend and the wallet balances."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    try:
        migrate(conn)
        conn.execute("BEGIN IMMEDIATE")
        interrupted = records.close_interrupted(conn)
        conn.execute("COMMIT")
        spend_project, spend_key = records.month_spend(conn, month_start_ms)
        projects = catalog.load_projects(conn)
        return {
            "projects": projects,
            "balances": {p["id"]: p["balance_micro"] for p in projects},
            "spend_project": spend_project,
            "spend_key": spend_key,
            "keys": catalog.load_keys(conn),
            "admin_hashes": catalog.load_admin_token_hashes(conn),
            "interrupted": interrupted,
        }
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
    def __init__(self, path: Path, storage: StorageSettings) -> None:
        self.path = path
        self.writer = Writer(path, storage.synchronous, storage.busy_timeout_ms, storage.max_batch)
        self.reader = Reader(path, storage.busy_timeout_ms)

    async def open(self, month_start_ms: int) -> dict[str, Any]:
        loaded = await asyncio.to_thread(prepare, self.path, month_start_ms)
        self.writer.start()
        await self.reader.open()
        return loaded

    async def close(self) -> None:
        await self.writer.stop()
        await self.reader.close()

    @property
    def healthy(self) -> bool:
        return self.writer.healthy

    def record_intent(self, caller: Caller, call: Call) -> asyncio.Future[Any]:
        return self.writer.submit(records.insert_intent(caller, call), lazy=True)  # type: ignore[arg-type]

    def record_outcome(self, caller: Caller, call: Call, outcome: Outcome) -> asyncio.Future[Any]:
        return self.writer.submit(records.complete(caller, call, outcome))  # type: ignore[arg-type]

    async def create_project(self, row: dict[str, Any]) -> None:
        await self.writer.run(catalog.insert_project(row))

    async def create_key(self, row: dict[str, Any]) -> None:
        await self.writer.run(catalog.insert_key(row))

    async def revoke_key(self, key_id: str, when_ms: int) -> int:
        return await self.writer.run(catalog.revoke_key(key_id, when_ms))

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

    def add_event(
        self, event_id: str, event_type: str, project_id: str | None, payload: dict[str, Any], when_ms: int
    ) -> asyncio.Future[Any]:
        return self.writer.submit(records.add_event(event_id, event_type, project_id, payload, when_ms))  # type: ignore[arg-type]

    async def append_ledger(
        self, project_id: str, kind: str, source_id: str, amount_micro: int, memo: str, when_ms: int
    ) -> tuple[dict[str, Any], bool]:
        """(entry, True) for a new entry; (the entry already recorded under (kind, source_id), False)
        otherwise: nothing happens twice, and a retry can tell whether it repeated the same thing."""

        def op(conn: Any) -> tuple[dict[str, Any], bool]:
            found = ledger.find(conn, kind, source_id)
            if found is not None:
                return found, False
            return ledger.append(conn, project_id, kind, source_id, amount_micro, memo, when_ms), True

        return await self.writer.run(op)

    async def ledger_history(self, project_id: str, limit: int) -> list[dict[str, Any]]:
        return await self.reader.call(lambda conn: ledger.history(conn, project_id, limit))

    async def verify_ledger(self) -> list[dict[str, Any]]:
        return await self.reader.call(ledger.verify)
