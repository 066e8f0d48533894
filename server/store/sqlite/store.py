"""The SQLite store facade the rest of the gateway uses: open, migrate, write, read."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from server.settings import StorageSettings
from server.store.sqlite import catalog, records
from server.store.sqlite.db import Writer, connect
from server.store.sqlite.migrations import migrate
from server.store.sqlite.reads import Reader
from server.types import Call, Caller, Outcome


def prepare(path: Path) -> dict[str, Any]:
    """Create/migrate the database, close crash-interrupted intents, and load the catalog."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    try:
        migrate(conn)
        conn.execute("BEGIN IMMEDIATE")
        interrupted = records.close_interrupted(conn)
        conn.execute("COMMIT")
        return {
            "projects": catalog.load_projects(conn),
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

    async def open(self) -> dict[str, Any]:
        loaded = await asyncio.to_thread(prepare, self.path)
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
        return self.writer.submit(records.insert_intent(caller, call))  # type: ignore[arg-type]

    def record_outcome(self, caller: Caller, call: Call, outcome: Outcome) -> asyncio.Future[Any]:
        return self.writer.submit(records.complete(caller, call, outcome))  # type: ignore[arg-type]

    async def create_project(self, row: dict[str, Any]) -> None:
        await self.writer.run(catalog.insert_project(row))

    async def create_key(self, row: dict[str, Any]) -> None:
        await self.writer.run(catalog.insert_key(row))

    async def revoke_key(self, key_id: str, when_ms: int) -> int:
        return await self.writer.run(catalog.revoke_key(key_id, when_ms))
