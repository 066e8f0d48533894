"""The request log's bodies: what a client sent and what it got, kept for `requests show` and `replay`.

`[logging] bodies` says which requests keep theirs (all, errors, off). Before anything is stored, every
secret is scrubbed (our keys, admin tokens, provider-key-shaped strings: server/redact.py), each body is
cut to `max_body_bytes` (marked truncated) and compressed. The write is queued lazily to the writer, off
the request's own commit. The disk budget (`max_disk_mb`) is enforced on every write (the oldest bodies
go first, down to 90 % of it) and `retention_days` by a periodic purge, so the log never fills the disk;
request rows and usage are kept regardless (they back invoices).
"""

from __future__ import annotations

import logging
import zlib
from typing import Any

import orjson

from server.redact import scrub
from server.settings import LoggingSettings
from server.store.protocol import BodyRecord, Store

log = logging.getLogger("gateway.request_log")
DAY_MS = 86_400_000


def pack(data: bytes | None, limit: int) -> tuple[bytes | None, bool]:
    """Scrubbed, cut to `limit` bytes, compressed; (None, False) for no body."""
    if data is None:
        return None, False
    text = scrub(data.decode("utf-8", errors="replace"))
    raw = text.encode()
    truncated = len(raw) > limit
    if truncated:
        raw = raw[:limit]
    return zlib.compress(raw, 1), truncated


def unpack(data: bytes | None, truncated: bool) -> Any:
    """A stored body back as JSON (or the cut text, when it was truncated)."""
    if data is None:
        return None
    text = zlib.decompress(data).decode("utf-8", errors="replace")
    if truncated:
        return text
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


class BodyLog:
    def __init__(self, store: Store, settings: LoggingSettings, stored_bytes: int) -> None:
        self._store = store
        self._settings = settings
        self._budget = settings.max_disk_mb << 20
        self.stored_bytes = stored_bytes

    def wants(self, status: str) -> bool:
        mode = self._settings.bodies
        return mode == "all" or (mode == "errors" and status != "ok")

    def record(self, request_id: str, when_ms: int, request: bytes | None, response: Any, status: str) -> None:
        """Queue a request's bodies (when the mode keeps them); never raises, never waits."""
        if not self.wants(status):
            return
        try:
            limit = self._settings.max_body_bytes
            request_blob, request_cut = pack(request, limit)
            response_blob, response_cut = pack(orjson.dumps(response) if response is not None else None, limit)
        except Exception:  # a body that cannot be serialised is not worth failing a request over
            log.exception("the bodies of %s were not stored", request_id)
            return
        record = BodyRecord(request_id, when_ms, request_blob, response_blob, request_cut, response_cut)
        self.stored_bytes += record.size
        over = self.stored_bytes - self._budget
        trim = self.stored_bytes - self._budget * 9 // 10 if over > 0 else 0
        future = self._store.record_bodies(record, trim)
        future.add_done_callback(lambda done: self._written(done, record.size))

    def _written(self, done: Any, size: int) -> None:
        if done.cancelled() or done.exception() is not None:
            self.stored_bytes -= size  # not stored after all
            return
        self.stored_bytes -= int(done.result())

    async def purge(self, now_ms: int) -> int:
        """Drop the bodies older than the retention; returns the bytes freed."""
        freed = await self._store.purge_bodies(now_ms - self._settings.retention_days * DAY_MS)
        self.stored_bytes -= freed
        return freed
