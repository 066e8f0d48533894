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

from server.redact import scrub_bytes
from server.settings import LoggingSettings
from server.store.protocol import BodyRecord, Store
from server.types import Call

log = logging.getLogger("gateway.request_log")
DAY_MS = 86_400_000
SCRUB_MARGIN = 512  # longer than any key shape: a key cut by max_body_bytes is still found whole


def pack(data: bytes | None, limit: int) -> tuple[bytes | None, bool]:
    """Cut to `limit` bytes, scrubbed, compressed; (None, False) for no body. The cut comes first (with a
    margin, so a secret straddling it is still recognised and redacted), so a huge body costs no more than
    a `limit`-sized one."""
    if data is None:
        return None, False
    truncated = len(data) > limit
    clean = scrub_bytes(data[: limit + SCRUB_MARGIN] if truncated else data)
    return zlib.compress(clean[:limit] if truncated else clean, 1), truncated


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


def why_missing(settings: LoggingSettings, status: str, started_ms: int, now_ms: int) -> str:
    """Why a request has no stored bodies, as well as the settings in force can tell."""
    if settings.bodies == "off":
        return 'bodies are not stored ([logging] bodies = "off")'
    if settings.bodies == "errors" and status == "ok":
        return 'bodies are stored for failed requests only ([logging] bodies = "errors")'
    if status == "pending":
        return "the request has not finished"
    if started_ms < now_ms - settings.retention_days * DAY_MS:
        return f"its bodies expired ([logging] retention_days = {settings.retention_days})"
    return (
        f"its bodies were dropped to keep the log under [logging] max_disk_mb = {settings.max_disk_mb}"
        " (or were not stored under an earlier setting)"
    )


def stored_bodies(found: dict[str, Any]) -> dict[str, Any]:
    """Stored bodies as the admin API shows them: JSON again (cut ones as text), with their cut flags."""
    return {
        "request": unpack(found["request"], found["request_truncated"]),
        "response": unpack(found["response"], found["response_truncated"]),
        "request_truncated": found["request_truncated"],
        "response_truncated": found["response_truncated"],
    }


class BodyLog:
    def __init__(self, store: Store, settings: LoggingSettings, stored_bytes: int) -> None:
        self._store = store
        self._settings = settings
        self._budget = settings.max_disk_mb << 20
        self.stored_bytes = stored_bytes

    def wants(self, status: str, replay: bool = False) -> bool:
        """Whether the mode keeps these bodies; a replay keeps its own whenever bodies are kept at all
        (the replay's diff is read from them)."""
        mode = self._settings.bodies
        return mode == "all" or (mode == "errors" and (status != "ok" or replay))

    def record(self, call: Call, when_ms: int, response: Any, status: str) -> None:
        """Queue a call's bodies (when the mode keeps them); `response` is the answer as JSON bytes or a
        value to serialise. Never raises, never waits."""
        if not self.wants(status, call.replay_of is not None):
            return
        request_id, request = call.request_id, call.raw
        try:
            limit = self._settings.max_body_bytes
            request_blob, request_cut = pack(request, limit)
            answer = response if isinstance(response, bytes) or response is None else orjson.dumps(response)
            response_blob, response_cut = pack(answer, limit)
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
