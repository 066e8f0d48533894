"""PostgreSQL's schema is SQLite's (after every SQLite migration): the same tables with the same columns,
so migrate-store copies every row; only the columns PostgreSQL adds for itself differ (rowid, owner)."""

from __future__ import annotations

import sqlite3

import psycopg

from server.store.postgres.dialect import HIDDEN
from server.store.postgres.migrations import migrate as migrate_pg
from server.store.sqlite import bodies
from server.store.sqlite.migrations import migrate as migrate_sqlite
from tests.support.services import Postgres

PG_ONLY_TABLES = {"instances", "leases", "file_chunks"}  # the fleet's own; files' bytes (on disk with SQLite)


def test_postgres_tables_and_columns_match_sqlite(postgres: Postgres) -> None:
    lite = sqlite3.connect(":memory:", isolation_level=None)
    migrate_sqlite(lite)
    for statement in bodies.SCHEMA:  # bodies.db's table lives in the same PostgreSQL database
        lite.execute(statement)
    expected = {
        table: [row[1] for row in lite.execute(f"PRAGMA table_info({table})")]
        for (table,) in lite.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    url = postgres.create_database("schema_pair")
    with psycopg.connect(url, autocommit=True) as conn:
        assert migrate_pg(conn)
        assert migrate_pg(conn) == []  # recorded once
        found: dict[str, list[str]] = {}
        for table, column in conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
            " ORDER BY table_name, ordinal_position"
        ).fetchall():
            if column not in HIDDEN:
                found.setdefault(table, []).append(column)
    for table in PG_ONLY_TABLES:
        found.pop(table)
    assert {t: sorted(c) for t, c in found.items()} == {t: sorted(c) for t, c in expected.items()}
