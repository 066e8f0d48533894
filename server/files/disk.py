"""Stored files' bytes on this machine's disk (the default, with SQLite): `<data_dir>/files/<project_id>/
<file_id>`, written whole before their row exists, read in chunks. Uploads land in `.incoming/` first
(server/api/multipart.py streams them there) and are moved into place with a rename, so a file is never
seen half written.

Failure behaviour: an OSError (disk full, permissions) propagates; a file written but never given a row
(the process died between the two) is an orphan that `open` removes at start-up.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from server.files.blobs import Written, spool

CHUNK = 256 * 1024


class FileDisk:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.incoming = root / ".incoming"

    def prepare(self) -> None:
        self.incoming.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.sweep_incoming()

    async def open(self) -> None:
        self.prepare()

    def sweep_incoming(self) -> int:
        """Remove uploads a crash left half-received (nothing refers to them); returns how many."""
        removed = 0
        for leftover in self.incoming.glob("*"):
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed

    def path_of(self, project_id: str, file_id: str) -> Path:
        if "/" in file_id or "/" in project_id or file_id.startswith("."):
            raise ValueError("not a stored file id")
        return self.root / project_id / file_id

    def _place(self, upload: Path, project_id: str, file_id: str) -> None:
        """Move a received file into place (same file system: a rename)."""
        target = self.path_of(project_id, file_id)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.replace(upload, target)

    async def keep(self, upload: Path, project_id: str, file_id: str) -> None:
        self._place(upload, project_id, file_id)

    async def write(self, project_id: str, file_id: str, data: bytes) -> Written:
        """Written to a temporary file, then renamed."""
        fd, temp = tempfile.mkstemp(prefix="write-", dir=self.incoming)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        self._place(Path(temp), project_id, file_id)
        return Written(len(data), hashlib.sha256(data).hexdigest())

    async def write_stream(self, project_id: str, file_id: str, chunks: AsyncIterator[bytes], cap: int) -> Written:
        temp, written = await spool(chunks, self.incoming, cap)
        self._place(temp, project_id, file_id)
        return written

    async def remove(self, project_id: str, file_id: str) -> None:
        self.path_of(project_id, file_id).unlink(missing_ok=True)

    async def chunks(
        self, project_id: str, file_id: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        path = self.path_of(project_id, file_id)
        handle = await asyncio.to_thread(path.open, "rb")
        try:
            await asyncio.to_thread(handle.seek, start)
            left = None if end is None else max(0, end - start)
            while left is None or left > 0:
                piece = await asyncio.to_thread(handle.read, CHUNK if left is None else min(CHUNK, left))
                if not piece:
                    return
                if left is not None:
                    left -= len(piece)
                yield piece
        finally:
            handle.close()

    async def read(self, project_id: str, file_id: str) -> bytes:
        return await asyncio.to_thread(self.path_of(project_id, file_id).read_bytes)

    async def close(self) -> None:
        """Nothing held open."""
