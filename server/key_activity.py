"""Keys' last use, written to the database in batches, never on the request path.

Authentication sets `KeyEntry.last_used_ms` in memory (one attribute store per request); the
admin API reads it from there. This flusher writes the keys whose time moved since the last flush
as one writer operation every `interval` seconds, and once more at shutdown. A crash loses at most
one interval of last-used times (informational, not money); a failed flush is logged and retried
with the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from server.snapshot import Snapshot

log = logging.getLogger("gateway.keys")

FLUSH_INTERVAL_S = 30.0
Write = Callable[[list[tuple[int, str]]], Awaitable[None]]


class LastUsedFlusher:
    def __init__(self, snapshot: Snapshot, write: Write, interval: float = FLUSH_INTERVAL_S) -> None:
        self._snapshot = snapshot
        self._write = write
        self._interval = interval
        self._saved = {key.id: key.last_used_ms for key in snapshot.keys_by_id.values()}
        self._task: asyncio.Task[None] | None = None

    def pending(self) -> list[tuple[int, str]]:
        """(last_used_ms, key id) for every key used since its time was last written."""
        return [
            (key.last_used_ms, key.id)
            for key in self._snapshot.keys_by_id.values()
            if key.last_used_ms is not None and key.last_used_ms != self._saved.get(key.id)
        ]

    async def flush(self) -> int:
        pending = self.pending()
        if pending:
            await self._write(pending)
            self._saved.update((key_id, when) for when, key_id in pending)
        return len(pending)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except Exception:
                log.exception("writing keys' last use failed (retried at the next flush)")

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="last-used-flusher")

    async def stop(self) -> None:
        """Stop the loop and write what is pending (before the store closes)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except Exception:
            log.exception("writing keys' last use at shutdown failed")
