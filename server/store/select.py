"""Which store a configuration asks for: SQLite in the data dir (the default) or PostgreSQL; and where
stored files' bytes go with it (server/files/blobs.py)."""

from __future__ import annotations

from server.files.blobs import Blobs
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


def make_blobs(settings: Settings) -> Blobs:
    """Files' bytes beside the store: on this machine's disk with SQLite, in the database with PostgreSQL
    (every process of a fleet serves every file)."""
    if settings.store.shared:
        from server.store.postgres.blobs import PgBlobs

        return PgBlobs(settings.store.url, settings.files_path, settings.store.pool_size)
    from server.files.disk import FileDisk

    return FileDisk(settings.files_path)
