"""Which store a configuration asks for: SQLite in the data dir (the default) or PostgreSQL."""

from __future__ import annotations

from server.settings import Settings
from server.store.protocol import Store
from server.store.sqlite.ledger import Chain


def make_store(settings: Settings, chain: Chain) -> Store:
    """The store `[store] url` names: empty is SQLite in the data dir, `postgresql://…` a shared database."""
    if settings.store.shared:
        from server.store.postgres.store import PostgresStore

        return PostgresStore(settings.store, settings.storage, chain)
    from server.store.sqlite.store import SqliteStore

    return SqliteStore(settings.database_path, settings.storage, chain)
