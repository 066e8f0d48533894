"""Files' bytes in PostgreSQL (server/store/postgres/blobs.py): chunks no live file owns (its row was deleted,
or never came because the process died between bytes and row) are removed at the next start once a day old;
a live file's chunks, and fresh ones whose row may still be on its way, are kept."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg

from server.clock import now_ms
from server.store.postgres.blobs import PgBlobs
from server.store.postgres.migrations import migrate
from tests.support.services import Postgres


async def _open_and_close(blobs: PgBlobs) -> None:
    await blobs.open()
    await blobs.close()


def test_orphaned_chunks_are_swept_at_start_and_live_ones_kept(postgres: Postgres, tmp_path: Path) -> None:
    url = postgres.create_database("file_chunks_sweep")
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        conn.execute("INSERT INTO projects (id, name, created_ms) VALUES ('prj_1', 'p', 0)")
        for file_id, deleted in (("file-live", None), ("file-deleted", 5)):
            conn.execute(
                "INSERT INTO files (id, project_id, purpose, filename, bytes, content_type, sha256, source,"
                " created_ms, deleted_ms) VALUES (%s, 'prj_1', 'user_data', 'f', 1, 'text', 'h', 'upload', 0, %s)",
                (file_id, deleted),
            )
        for file_id, written in (("file-live", 0), ("file-deleted", 0), ("file-orphan", 0), ("file-coming", now_ms())):
            conn.execute("INSERT INTO file_chunks VALUES (%s, 0, 'x', %s)", (file_id, written))
    asyncio.run(_open_and_close(PgBlobs(url, tmp_path / "files")))
    with psycopg.connect(url) as conn:
        left = [row[0] for row in conn.execute("SELECT file_id FROM file_chunks ORDER BY file_id")]
    assert left == ["file-coming", "file-live"]
