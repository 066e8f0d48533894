"""Idempotency keys on every POST of the /v1 API (as Stripe and the IETF draft have them).

The first successful answer to a (project, key) is stored in the same transaction as its charge, and
returned again for the same key and body within `idempotency.retention_hours`, with the header
`idempotent-replayed: true`, without a second call upstream or a second charge; a stream is replayed as
the same event sequence. The same key with another body is a 422 `idempotency_key_mismatch`; a retry
while the first is still in flight is a 409 `idempotency_key_in_flight` with Retry-After (it does not
wait). A failed first attempt is not stored, so its retry runs. Keys are per project and survive a
restart (the answers are in the database; what is in flight is in memory, and a restart ends it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from server.errors import IDEMPOTENCY_KEY_IN_FLIGHT, IDEMPOTENCY_KEY_MISMATCH, INVALID_IDEMPOTENCY_KEY
from server.store.protocol import IdempotencyRecord, Store

HEADER = "idempotency-key"
REPLAYED = "idempotent-replayed"
HOUR_MS = 3_600_000


@dataclass(slots=True, frozen=True)
class Claim:
    """A key this request holds while it runs; the closing stores its answer under it."""

    project_id: str
    key: str
    body_sha256: str
    expires_after_ms: int

    def record(
        self, request_id: str, status: int, headers: Mapping[str, str], stream: bool, body: bytes, now_ms: int
    ) -> IdempotencyRecord:
        return IdempotencyRecord(
            self.project_id,
            self.key,
            self.body_sha256,
            request_id,
            status,
            dict(headers),
            stream,
            body,
            now_ms,
            now_ms + self.expires_after_ms,
        )


class InFlight(Protocol):
    """The keys being answered now: in this process's memory, or shared by a fleet (server/state/claims.py)."""

    def take(self, slot: tuple[str, str]) -> bool:
        """Claim `slot`; False when another request holds it."""
        ...

    def drop(self, slot: tuple[str, str]) -> None: ...


class LocalInFlight:
    """In-flight keys in a set: the event loop is single-threaded, so take is atomic."""

    def __init__(self) -> None:
        self._slots: set[tuple[str, str]] = set()

    def take(self, slot: tuple[str, str]) -> bool:
        if slot in self._slots:
            return False
        self._slots.add(slot)
        return True

    def drop(self, slot: tuple[str, str]) -> None:
        self._slots.discard(slot)


class Idempotency:
    def __init__(self, store: Store, retention_hours: int, in_flight: InFlight | None = None) -> None:
        self._store = store
        self._retention_ms = retention_hours * HOUR_MS
        self._in_flight: InFlight = in_flight if in_flight is not None else LocalInFlight()

    async def claim(self, project_id: str, key: str, raw_body: bytes, now_ms: int) -> Claim | IdempotencyRecord:
        """The stored answer to replay, or a claim on the key for this request (release it when it ends)."""
        if not 0 < len(key) <= 255 or not key.isprintable():
            raise INVALID_IDEMPOTENCY_KEY(param=HEADER)
        slot = (project_id, key)
        if not self._in_flight.take(slot):  # before the lookup: a concurrent twin sees it at once
            raise IDEMPOTENCY_KEY_IN_FLIGHT(headers={"retry-after": "1"})
        try:
            sha = hashlib.sha256(raw_body).hexdigest()
            found = await self._store.idempotent_answer(project_id, key, now_ms)
        except BaseException:
            self._in_flight.drop(slot)
            raise
        if found is None:
            return Claim(project_id, key, sha, self._retention_ms)
        self._in_flight.drop(slot)
        if found.body_sha256 != sha:
            raise IDEMPOTENCY_KEY_MISMATCH(param=HEADER)
        return found

    def release(self, claim: Claim) -> None:
        self._in_flight.drop((claim.project_id, claim.key))
