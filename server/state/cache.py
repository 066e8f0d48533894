"""The answer cache on Redis, shared by a fleet: the same `get`/`put` as server/answer_cache.py.

An entry is one Redis string (a JSON header line with the tokens, model and estimate flag, then the
answer's bytes) that expires with its TTL; Redis's own memory policy bounds the total (set `maxmemory`
and an LRU `maxmemory-policy` on a Redis that holds a cache). Keys are the same project-scoped digests.

Failure behaviour: Redis out of reach is a miss (and a put is skipped); the cache is an optimisation,
never a record.
"""

from __future__ import annotations

import time

import orjson

from server.answer_cache import Entry
from server.state.connection import PREFIX, Connection, Unavailable


class SharedAnswerCache:
    """`AnswerCache` with its entries in Redis (wall-clock deadlines: processes share them)."""

    def __init__(self, connection: Connection, max_bytes: int) -> None:
        self._connection = connection
        self.max_bytes = max_bytes
        self.clock = time.time
        self.bytes = 0  # held in Redis, not here
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def __len__(self) -> int:
        return 0

    def deadline(self, ttl_s: float) -> float:
        return self.clock() + ttl_s

    def get(self, key: bytes) -> Entry | None:
        try:
            found = self._connection.call(self._connection.client.get, PREFIX + "cache:" + key.hex())
        except Unavailable:
            found = None
        if not found:
            self.misses += 1
            return None
        head, _, value = found.partition(b"\n")
        input_tokens, output_tokens, model, estimated, expires = orjson.loads(head)
        self.hits += 1
        return Entry(value, input_tokens, output_tokens, model, estimated, expires)

    def put(self, key: bytes, entry: Entry) -> None:
        ttl_ms = int((entry.expires - self.clock()) * 1000)
        if ttl_ms <= 0 or entry.weight > self.max_bytes:
            return
        head = orjson.dumps([entry.input_tokens, entry.output_tokens, entry.model, entry.estimated, entry.expires])
        try:
            value = head + b"\n" + entry.value
            self._connection.call(self._connection.client.set, PREFIX + "cache:" + key.hex(), value, None, ttl_ms)
        except Unavailable:
            pass
