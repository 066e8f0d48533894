"""Where stored files' bytes live: `<data_dir>/files/<project_id>/<file_id>`, written whole before their row
exists, read in chunks. Uploads land in `.incoming/` first (server/api/multipart.py streams them there) and
are moved into place with a rename, so a file is never seen half written.

Failure behaviour: an OSError (disk full, permissions) propagates; a file written but never given a row
(the process died between the two) is an orphan that `sweep_incoming` removes at start-up.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

CHUNK = 256 * 1024


@dataclass(slots=True, frozen=True)
class Written:
    path: Path
    size: int
    sha256: str


class FileDisk:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.incoming = root / ".incoming"

    def prepare(self) -> None:
        self.incoming.mkdir(parents=True, exist_ok=True, mode=0o700)

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

    def keep(self, upload: Path, project_id: str, file_id: str) -> Path:
        """Move a received upload into place (same file system: a rename)."""
        target = self.path_of(project_id, file_id)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.replace(upload, target)
        return target

    def write(self, project_id: str, file_id: str, data: bytes) -> Written:
        """Bytes the gateway made or received whole (an image); written to a temporary file, then renamed."""
        fd, temp = tempfile.mkstemp(prefix="write-", dir=self.incoming)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        path = self.keep(Path(temp), project_id, file_id)
        return Written(path, len(data), hashlib.sha256(data).hexdigest())

    async def write_stream(self, project_id: str, file_id: str, chunks: AsyncIterator[bytes], cap: int) -> Written:
        """Bytes arriving in chunks (a job's result from its provider), never held whole; over `cap` bytes
        raises ValueError and keeps nothing."""
        fd, temp = tempfile.mkstemp(prefix="write-", dir=self.incoming)
        digest, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > cap:
                        raise ValueError(f"larger than {cap} bytes")
                    digest.update(chunk)
                    await asyncio.to_thread(out.write, chunk)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return Written(self.keep(Path(temp), project_id, file_id), size, digest.hexdigest())

    def remove(self, project_id: str, file_id: str) -> None:
        self.path_of(project_id, file_id).unlink(missing_ok=True)

    async def chunks(
        self, project_id: str, file_id: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """The file's bytes [start, end) in chunks, read off the event loop."""
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
