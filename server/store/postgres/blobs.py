"""Stored files' bytes in PostgreSQL, for a fleet (`[store] url`): a file uploaded through one machine is
downloaded through another. Each file is rows of `file_chunks (file_id, seq, data)`, `CHUNK` bytes each
(the last shorter), in the same database as the files' rows, kept uncompressed (`STORAGE EXTERNAL`: media
is compressed already, and a range is then read without detoasting whole chunks).

How bytes move, and why:
- in: whatever arrives in pieces (a multipart upload, a job's result) is first spooled to this machine's
  scratch folder (as on disk), then copied into the table in one transaction with COPY, a chunk at a time,
  on a connection of this module's own pool in a worker thread: the event loop never waits on it, the
  metering writer never carries file bytes, and memory stays at a chunk or two whatever the size;
- out: one chunk per query, each on a pooled connection taken for that query only, so a slow client holds
  no connection while it reads.

Failure behaviour: a psycopg error propagates (the caller keeps no row, so the upload fails whole); a
crash between the chunks' commit and the file's row (or between a file's deletion and its chunks') leaves
chunks no live file owns, which the next start (`open`) removes once they are older than `ORPHAN_AFTER_MS`
(a job's row may still be on its way).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from server.clock import now_ms
from server.files.blobs import Written, spool
from server.files.disk import FileDisk
from server.store.postgres.reader import PgReader

log = logging.getLogger("gateway.files")

CHUNK = 1 << 20
ORPHAN_AFTER_MS = 86_400_000


def pieces_of(handle: BinaryIO, size: int = CHUNK) -> Iterator[bytes]:
    while piece := handle.read(size):
        yield piece


def copy_chunks(conn: Any, file_id: str, pieces: Iterable[bytes], when_ms: int) -> int:
    """COPY a file's pieces into `file_chunks` on `conn` (a psycopg connection, inside the caller's
    transaction); returns the bytes written. Also used by migrate-store (server/store/postgres/copy.py)."""
    written, seq = 0, -1
    with conn.cursor().copy("COPY file_chunks (file_id, seq, data, created_ms) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["text", "int4", "bytea", "int8"])
        for seq, piece in enumerate(pieces):
            copy.write_row((file_id, seq, piece, when_ms))
            written += len(piece)
        if seq < 0:  # an empty file is one empty chunk: no chunk at all means no such file
            copy.write_row((file_id, 0, b"", when_ms))
    return written


def sweep_orphans(conn: Any, older_than_ms: int) -> int:
    """Delete chunks that no live file owns (deleted, or whose row never came) written before the cutoff."""
    cur = conn.execute(
        "DELETE FROM file_chunks c WHERE c.created_ms < %s"
        " AND NOT EXISTS (SELECT 1 FROM files f WHERE f.id = c.file_id AND f.deleted_ms IS NULL)",
        (older_than_ms,),
    )
    return cur.rowcount


class PgBlobs:
    def __init__(self, url: str, scratch_root: Path, pool_size: int = 4) -> None:
        self._scratch = FileDisk(scratch_root)  # only its incoming folder: no file is kept on this disk
        self.incoming = self._scratch.incoming
        self._pool = PgReader(url, pool_size, application="gateway-files")

    async def open(self) -> None:
        self._scratch.prepare()
        await self.sweep()

    async def sweep(self) -> int:
        """Remove orphaned chunks (see the module's failure behaviour); returns how many rows went."""
        swept = await self._pool.call(lambda conn: sweep_orphans(conn.raw, now_ms() - ORPHAN_AFTER_MS))
        if swept:
            log.warning("removed %d file chunks no live file owned (a crash between bytes and row)", swept)
        return swept

    def _store(self, file_id: str, pieces: Iterable[bytes]) -> None:
        def run(conn: Any) -> None:
            with conn.raw.transaction():
                copy_chunks(conn.raw, file_id, pieces, now_ms())

        self._pool.use(run)

    async def keep(self, upload: Path, project_id: str, file_id: str) -> None:
        def run() -> None:
            with upload.open("rb") as handle:
                self._store(file_id, pieces_of(handle))
            upload.unlink(missing_ok=True)

        await asyncio.to_thread(run)

    async def write(self, project_id: str, file_id: str, data: bytes) -> Written:
        view = memoryview(data)
        pieces = (bytes(view[i : i + CHUNK]) for i in range(0, len(data), CHUNK))
        await asyncio.to_thread(self._store, file_id, pieces)
        return Written(len(data), hashlib.sha256(data).hexdigest())

    async def write_stream(self, project_id: str, file_id: str, chunks: AsyncIterator[bytes], cap: int) -> Written:
        temp, written = await spool(chunks, self.incoming, cap)
        try:
            await self.keep(temp, project_id, file_id)
        finally:
            temp.unlink(missing_ok=True)
        return written

    async def remove(self, project_id: str, file_id: str) -> None:
        await self._pool.call(lambda conn: conn.raw.execute("DELETE FROM file_chunks WHERE file_id = %s", (file_id,)))

    async def _sizes(self, file_id: str) -> list[tuple[int, int]]:
        return await self._pool.call(
            lambda conn: conn.raw.execute(
                "SELECT seq, octet_length(data) FROM file_chunks WHERE file_id = %s ORDER BY seq", (file_id,)
            ).fetchall()
        )

    async def _chunk(self, file_id: str, seq: int) -> bytes:
        row = await self._pool.call(
            lambda conn: conn.raw.execute(
                "SELECT data FROM file_chunks WHERE file_id = %s AND seq = %s", (file_id, seq)
            ).fetchone()
        )
        if row is None:
            raise FileNotFoundError(f"{file_id}: chunk {seq} is gone (the file was deleted)")
        return bytes(row[0])

    async def chunks(
        self, project_id: str, file_id: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        sizes = await self._sizes(file_id)
        if not sizes:
            raise FileNotFoundError(f"{file_id}: no such file's bytes")
        offset = 0
        for seq, size in sizes:
            first, offset = offset, offset + size
            if offset <= start:
                continue
            if end is not None and first >= end:
                return
            data = await self._chunk(file_id, seq)
            yield data[max(0, start - first) : None if end is None else end - first]

    async def read(self, project_id: str, file_id: str) -> bytes:
        return b"".join([piece async for piece in self.chunks(project_id, file_id)])

    async def close(self) -> None:
        await self._pool.close()
