"""Where stored files' bytes live, behind one seam with two implementations:

| store                      | bytes                                   | module                          |
|----------------------------|-----------------------------------------|---------------------------------|
| SQLite (the default)       | `<data_dir>/files/<project>/<file id>`  | server/files/disk.py            |
| PostgreSQL (`[store] url`) | `file_chunks` rows in the same database | server/store/postgres/blobs.py  |

Either way bytes arrive in the local scratch folder `incoming` first (multipart uploads, a job's result),
never whole in memory, and are kept under the file's id before its row is written; a file is never seen
half written. `server/store/select.py` picks the implementation from `[store] url`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(slots=True, frozen=True)
class Written:
    size: int
    sha256: str


class Blobs(Protocol):
    incoming: Path  # local scratch for bytes still arriving (this machine's data dir)

    async def open(self) -> None:
        """Create the scratch folder and remove what a crash left in it (and in the store)."""
        ...

    async def keep(self, upload: Path, project_id: str, file_id: str) -> None:
        """Take a received upload from the scratch folder and keep it as the file's bytes (the upload is gone)."""
        ...

    async def write(self, project_id: str, file_id: str, data: bytes) -> Written:
        """Bytes the gateway made or received whole (an image)."""
        ...

    async def write_stream(self, project_id: str, file_id: str, chunks: AsyncIterator[bytes], cap: int) -> Written:
        """Bytes arriving in chunks, never held whole; over `cap` bytes raises ValueError and keeps nothing."""
        ...

    async def remove(self, project_id: str, file_id: str) -> None: ...

    def chunks(self, project_id: str, file_id: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The file's bytes [start, end) in chunks, read off the event loop."""
        ...

    async def read(self, project_id: str, file_id: str) -> bytes: ...

    async def close(self) -> None: ...


async def spool(chunks: AsyncIterator[bytes], directory: Path, cap: int) -> tuple[Path, Written]:
    """Write arriving chunks to a temporary file in `directory` (synced), hashing on the way; over `cap`
    bytes raises ValueError and leaves nothing behind."""
    fd, temp = tempfile.mkstemp(prefix="write-", dir=directory)
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
    return Path(temp), Written(size, digest.hexdigest())
