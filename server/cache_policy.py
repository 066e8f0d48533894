"""Which calls the answer cache (server/answer_cache.py) serves, under which key, and what a hit bills.

- Embeddings (/v1/embeddings): cached for every model, on by default: entries live `EMBEDDINGS_TTL_S` (a
  day) unless the model's `cache = { ttl_s = … }` says otherwise (`ttl_s = 0`: never for that model).
  Each input item is its own entry, keyed by the project, the public model, its first target, the
  `encoding_format` (float or base64: the SDK's default), `dimensions` and any other field that may
  change the vectors (all but `input`, `model` and `user`). A batch sends only the items the cache does
  not hold upstream, in one call, and merges the answer back in the client's order with the right
  `index` values. An item's token count is stored with its vector: the upstream's count for the items it
  embedded, apportioned by their length when it counted a whole batch (exact for one item or token ids).
- Chat (/v1/chat/completions, not stream): only models with `cache = { ttl_s = … }`, and only requests
  with `temperature` 0 or the header `x-gateway-cache: use`. The key is the project, the public model,
  its first target and the whole body, canonical, less the fields that do not change the answer
  (`IGNORED_CHAT_FIELDS`; `stream: false` is the same as no `stream`). A stream is never served from or
  stored in the cache (BYPASS): replaying an answer as chunks would be a second stream format to keep.
- `x-gateway-cache: bypass` (or `no-store`) skips the cache both ways, and so does a replay (`gatewayctl
  replay` asks again: a cached answer would compare the original with itself, and an answer from a pinned
  `--target` must never be stored as the model's own).

Status (the `x-cache-status` header and the request row's `cache_status`): HIT when the whole answer
came from the cache (no upstream call: the request row shows provider `cache` and no attempt), MISS when
anything went upstream (a batch with some hits included), BYPASS when the call was cacheable but the
cache was skipped (the header, a replay, a stream, a non-zero temperature, a cache sized 0, a model set
to 0); None for calls that are not cacheable at all (other endpoints, chat models without `cache`).

Billing: the tokens a hit serves are the request's `cache_hit_tokens` (inside its input tokens, and for
a chat answer its output tokens too), priced by `metering.charge` at the card's `cache_hit` rate (default
0). Only answers from a model's first target are stored, so a fallback's answer never stands in for the
model's own; only successful answers are stored, after they are metered.

Failure behaviour: a batch with hits whose upstream answer cannot be merged (missing or duplicate
indices) is that target's failure (502, the next target is tried); without hits such an answer passes
on unchanged and is not stored. Nothing here touches the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from server.answer_cache import AnswerCache, Entry, digest, digests
from server.dialects.base import Dialect
from server.errors import UpstreamError
from server.metering import estimate, tokens_in
from server.providers.base import Provider
from server.snapshot import ModelEntry
from server.types import Call, Target, Usage

HIT, MISS, BYPASS = "HIT", "MISS", "BYPASS"
USE, SKIP = "use", "bypass"  # the client's x-gateway-cache header, read at the edge into Call.cache_mode
EMBEDDINGS_TTL_S = 86_400
CACHE_PROVIDER = "cache"  # the request row's provider when the cache served the whole answer
IGNORED_CHAT_FIELDS = frozenset(
    {"user", "metadata", "store", "safety_identifier", "prompt_cache_key", "stream_options"}
)
UNKEYED_EMBEDDING_FIELDS = frozenset({"input", "model", "user", "encoding_format", "dimensions"})

JSON = dict[str, Any]


@dataclass(slots=True, frozen=True)
class FromCache:
    """A whole answer the cache served: the body (before usage and cost are presented), what it bills, and
    the upstream model that made it (shown as `x-model-used`)."""

    answer: JSON
    usage: Usage
    target: Target


class Lookup:
    """What the cache does for one call. This base is a call the cache leaves alone (status None or
    BYPASS): nothing served, the upstream call as usual, nothing stored."""

    def __init__(self, status: str | None = None) -> None:
        self.status = status

    def served(self) -> FromCache | None:
        """The whole answer, when the cache holds all of it."""
        return None

    async def unary(self, dialect: Dialect, provider: Provider, model: str, body: JSON) -> tuple[JSON, Usage | None]:
        """One upstream attempt for what the cache did not serve, merged with what it did."""
        return await dialect.unary(provider, model, body)

    def keep(self, answer: JSON, usage: Usage, target: Target) -> None:
        """Store a successful answer's new parts (called once it is metered, before its cost is added)."""


class Caching:
    """Turns a call into its `Lookup`, reading the shared cache."""

    def __init__(self, cache: AnswerCache) -> None:
        self.cache = cache

    def lookup(self, project_id: str, call: Call, model: ModelEntry, endpoint: str) -> Lookup:
        """What the cache does for `call`: decided and read now, before routing, so its status is known
        whichever way the call ends (a failed MISS is recorded as MISS)."""
        if endpoint == "embeddings":
            ttl = EMBEDDINGS_TTL_S if model.cache_ttl_s is None else model.cache_ttl_s
            if not ttl or call.stream or _skipped(call) or not self.cache.enabled:
                return Lookup(BYPASS)
            return EmbeddingsLookup(self.cache, _embedding_prefix(project_id, call.body, model), call.body, ttl)
        if endpoint != "chat" or not model.cache_ttl_s:
            return Lookup()
        temperature = call.body.get("temperature")
        wanted = call.cache_mode == USE or (call.cache_mode is None and temperature == 0)
        if call.stream or not wanted or _skipped(call) or not self.cache.enabled:
            return Lookup(BYPASS)
        fields = {k: v for k, v in call.body.items() if k not in IGNORED_CHAT_FIELDS}
        if fields.get("stream") is False:
            del fields["stream"]
        key = digest("chat", project_id, model.name, str(model.targets[0]), fields)
        return ChatLookup(self.cache, key, model.cache_ttl_s)


def _skipped(call: Call) -> bool:
    """The client asked to skip the cache, or the call is a replay (which always asks the upstream again)."""
    return call.cache_mode == SKIP or call.replay_of is not None


def _embedding_prefix(project_id: str, body: JSON, model: ModelEntry) -> tuple[object, ...]:
    extra = {k: v for k, v in body.items() if k not in UNKEYED_EMBEDDING_FIELDS}
    fmt, dimensions = body.get("encoding_format") or "float", body.get("dimensions")
    return ("embeddings", project_id, model.name, str(model.targets[0]), fmt, dimensions, extra)


class ChatLookup(Lookup):
    def __init__(self, cache: AnswerCache, key: bytes, ttl_s: int) -> None:
        self._cache, self._key, self._ttl_s = cache, key, ttl_s
        self._entry = cache.get(key)
        super().__init__(HIT if self._entry is not None else MISS)

    def served(self) -> FromCache | None:
        entry = self._entry
        if entry is None:
            return None
        tokens = entry.input_tokens + entry.output_tokens
        usage = Usage(
            input_tokens=entry.input_tokens,
            output_tokens=entry.output_tokens,
            cache_hit_tokens=tokens,
            estimated=entry.estimated,
        )
        return FromCache(orjson.loads(entry.value), usage, Target(CACHE_PROVIDER, entry.model))

    def keep(self, answer: JSON, usage: Usage, target: Target) -> None:
        value = orjson.dumps(answer)
        expires = self._cache.deadline(self._ttl_s)
        entry = Entry(value, usage.input_tokens, usage.output_tokens, target.model, usage.estimated, expires)
        self._cache.put(self._key, entry)


def _items(body: JSON) -> list[Any]:
    """The input items of an embeddings body (validated at the edge): one string or token-id array, or a list."""
    value = body["input"]
    if isinstance(value, list) and value and not isinstance(value[0], int):
        return value
    return [value]


class EmbeddingsLookup(Lookup):
    def __init__(self, cache: AnswerCache, prefix: tuple[object, ...], body: JSON, ttl_s: int) -> None:
        self._cache, self._ttl_s = cache, ttl_s
        self._items = _items(body)
        self._keys = digests(prefix, self._items)
        self._found = [cache.get(key) for key in self._keys]
        self._misses = [i for i, entry in enumerate(self._found) if entry is None]
        self._fresh: list[tuple[bytes, bytes, int]] = []  # (key, vector JSON, tokens) of the items fetched
        self._estimated = False
        super().__init__(MISS if self._misses else HIT)

    def served(self) -> FromCache | None:
        if self._misses:
            return None
        found = [entry for entry in self._found if entry is not None]
        tokens = sum(entry.input_tokens for entry in found)
        data = [_datum(i, orjson.Fragment(entry.value)) for i, entry in enumerate(found)]
        answer = {"object": "list", "data": data, "model": found[0].model}
        answer["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        estimated = any(entry.estimated for entry in found)
        usage = Usage(input_tokens=tokens, cache_hit_tokens=tokens, estimated=estimated)
        return FromCache(answer, usage, Target(CACHE_PROVIDER, found[0].model))

    async def unary(self, dialect: Dialect, provider: Provider, model: str, body: JSON) -> tuple[JSON, Usage | None]:
        hits = len(self._items) - len(self._misses)
        forwarded = body if not hits else {**body, "input": [self._items[i] for i in self._misses]}
        answer, reported = await dialect.unary(provider, model, forwarded)
        vectors = _vectors(answer, len(self._misses))
        if vectors is None:
            if hits:
                raise UpstreamError(
                    502,
                    f"{provider.name}'s embeddings answer does not hold one vector per input",
                    retryable=True,
                    upstream_status="invalid_json",
                )
            self._fresh = []
            return answer, reported  # passed on as it came, not stored
        upstream = reported or estimate(len(orjson.dumps(forwarded)), 0)
        weights = [_weight(self._items[i]) for i in self._misses]
        tokens = apportion(upstream.input_tokens, weights)
        keys = [self._keys[i] for i in self._misses]
        self._fresh = [(key, orjson.dumps(vector), n) for key, vector, n in zip(keys, vectors, tokens, strict=True)]
        self._estimated = upstream.estimated
        if not hits:
            return answer, reported
        data: list[Any] = [None] * len(self._items)
        for position, vector in zip(self._misses, vectors, strict=True):
            data[position] = _datum(position, vector)
        for position, entry in enumerate(self._found):
            if entry is not None:
                data[position] = _datum(position, orjson.Fragment(entry.value))
        hit_tokens = sum(entry.input_tokens for entry in self._found if entry is not None)
        total = upstream.input_tokens + hit_tokens
        answer["data"] = data
        answer["usage"] = {"prompt_tokens": total, "total_tokens": total}
        return answer, Usage(input_tokens=total, cache_hit_tokens=hit_tokens, estimated=upstream.estimated)

    def keep(self, answer: JSON, usage: Usage, target: Target) -> None:
        expires = self._cache.deadline(self._ttl_s)
        for key, value, tokens in self._fresh:
            self._cache.put(key, Entry(value, tokens, 0, target.model, self._estimated, expires))


def _datum(index: int, vector: Any) -> JSON:
    return {"object": "embedding", "index": index, "embedding": vector}


def _vectors(answer: JSON, count: int) -> list[Any] | None:
    """The answer's vectors in input order, or None when it does not hold exactly one per input."""
    data = answer.get("data")
    if not isinstance(data, list) or len(data) != count:
        return None
    vectors: list[Any] = [None] * count
    for datum in data:
        index = datum.get("index") if isinstance(datum, dict) else None
        vector = datum.get("embedding") if isinstance(datum, dict) else None
        if type(index) is not int or not 0 <= index < count or vectors[index] is not None:
            return None
        if not isinstance(vector, list | str):
            return None
        vectors[index] = vector
    return vectors


def _weight(item: Any) -> int:
    """An input item's share of a batch's tokens: its token ids, or ~4 characters per token."""
    return len(item) if isinstance(item, list) else max(1, tokens_in(len(item)))


def apportion(total: int, weights: list[int]) -> list[int]:
    """`total` split in proportion to `weights`, in whole numbers that add up to it (largest remainders)."""
    whole = sum(weights)
    if not weights:
        return []
    if whole <= 0:
        return [total // len(weights) + (1 if i < total % len(weights) else 0) for i in range(len(weights))]
    shares = [total * w // whole for w in weights]
    order = sorted(range(len(weights)), key=lambda i: total * weights[i] % whole, reverse=True)
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return shares
