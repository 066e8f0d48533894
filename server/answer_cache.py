"""The answer cache: successful upstream answers kept in memory, so an identical request is served without
calling the upstream. One job: a least-recently-used map bounded in bytes, with a deadline per entry.

What is cached under which key, and how a hit is billed, is decided elsewhere (server/cache_policy.py);
keys arrive as sha256 digests of canonical parts that always start with the project, so no entry is ever
shared between projects. Each entry weighs its value's bytes plus a fixed overhead; past `max_bytes` the
least recently used entries are dropped; an entry heavier than the whole bound is not stored; a bound of 0
disables the cache (every lookup misses, nothing is kept). An expired entry is dropped when it is looked
up, and otherwise ages out like any other, so the bound holds either way.

Why not a library: cachetools' TLRUCache could hold this, but the whole job is an OrderedDict and a byte
count, and this way the counters /metrics wants are plain attributes and the appliance gains no dependency.

Failure behaviour: nothing here fails or blocks; the cache lives in memory only, so a restart empties it
(it is an optimisation, never a record: the request log and the ledger keep what was served and billed).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import orjson

ENTRY_OVERHEAD = 256  # bytes beside the value: the 32-byte key, the entry object, the map's slot and link


@dataclass(slots=True, frozen=True)
class Entry:
    """One cached answer: its JSON (one embedding, or a whole chat completion), the tokens it was billed
    for when it was made (so a hit knows what it serves), the upstream model that made it."""

    value: bytes
    input_tokens: int
    output_tokens: int
    model: str
    estimated: bool
    expires: float  # on the cache's clock (time.monotonic)

    @property
    def weight(self) -> int:
        return len(self.value) + ENTRY_OVERHEAD


def digest(*parts: object) -> bytes:
    """A cache key: sha256 of the parts as canonical JSON (object keys sorted at every depth)."""
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).digest()


def digests(prefix: tuple[object, ...], items: list[object]) -> list[bytes]:
    """One key per item under a shared prefix (the parts hashed once): sha256 of the prefix's canonical JSON
    array followed by the item's JSON, unambiguous because the array ends where the item begins."""
    shared = hashlib.sha256(orjson.dumps(prefix, option=orjson.OPT_SORT_KEYS))
    keys = []
    for item in items:
        key = shared.copy()
        key.update(orjson.dumps(item, option=orjson.OPT_SORT_KEYS))
        keys.append(key.digest())
    return keys


class AnswerCache:
    """A bytes-bounded LRU of `Entry` by key digest; counters say how it is used (for /metrics)."""

    def __init__(self, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self.clock = clock
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._entries)

    def deadline(self, ttl_s: float) -> float:
        return self.clock() + ttl_s

    def get(self, key: bytes) -> Entry | None:
        """The live entry for `key` (now the most recently used), or None."""
        entry = self._entries.get(key)
        if entry is not None and entry.expires <= self.clock():
            self._drop(key)
            entry = None
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: bytes, entry: Entry) -> None:
        """Keep `entry` under `key`, dropping the least recently used entries past the bound."""
        if entry.weight > self.max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = entry
        self.bytes += entry.weight
        while self.bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self.evictions += 1

    def _drop(self, key: bytes) -> None:
        self.bytes -= self._entries.pop(key).weight
