"""The answer cache alone: bounded in bytes, least recently used out first, entries expire."""

from __future__ import annotations

from server.answer_cache import ENTRY_OVERHEAD, AnswerCache, Entry, digest, digests


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def entry(size: int, expires: float = 10**9) -> Entry:
    return Entry(b"x" * size, 1, 0, "m", False, expires)


def test_the_least_recently_used_entries_go_first_and_the_bound_holds() -> None:
    cache = AnswerCache(max_bytes=3 * (100 + ENTRY_OVERHEAD))
    for name in "abc":
        cache.put(digest(name), entry(100))
    assert cache.get(digest("a")) is not None  # a is now the most recently used
    cache.put(digest("d"), entry(100))
    assert cache.get(digest("b")) is None and cache.evictions == 1
    assert all(cache.get(digest(name)) is not None for name in "acd")
    assert cache.bytes == 3 * (100 + ENTRY_OVERHEAD) and len(cache) == 3
    cache.put(digest("big"), entry(250))  # needs room of two entries
    assert len(cache) == 2 and cache.bytes <= cache.max_bytes
    assert cache.get(digest("big")) is not None


def test_an_entry_heavier_than_the_bound_is_not_kept_and_zero_disables() -> None:
    cache = AnswerCache(max_bytes=1000)
    cache.put(digest("huge"), entry(1000))
    assert len(cache) == 0 and cache.bytes == 0
    off = AnswerCache(max_bytes=0)
    off.put(digest("a"), entry(1))
    assert not off.enabled and off.get(digest("a")) is None and off.misses == 1


def test_an_expired_entry_is_a_miss_and_gives_its_bytes_back() -> None:
    clock = Clock()
    cache = AnswerCache(max_bytes=10_000, clock=clock)
    cache.put(digest("a"), entry(10, expires=cache.deadline(60)))
    clock.now += 59
    assert cache.get(digest("a")) is not None
    clock.now += 1
    assert cache.get(digest("a")) is None and cache.bytes == 0 and (cache.hits, cache.misses) == (1, 1)


def test_replacing_an_entry_counts_its_bytes_once() -> None:
    cache = AnswerCache(max_bytes=10_000)
    cache.put(digest("a"), entry(10))
    cache.put(digest("a"), entry(20))
    assert cache.bytes == 20 + ENTRY_OVERHEAD and len(cache) == 1


def test_keys_are_canonical_and_tell_parts_apart() -> None:
    assert digest("p", {"a": 1, "b": [1, 2]}) == digest("p", {"b": [1, 2], "a": 1})
    assert digest("p1", "x") != digest("p2", "x")
    assert digest("p", ["ab", "c"]) != digest("p", ["a", "bc"])


def test_item_keys_under_a_prefix_tell_items_and_prefixes_apart() -> None:
    keys = digests(("p", "model", "float"), ["a", [1, 2], "b"])
    assert len(set(keys)) == 3
    assert digests(("p", "model", "float"), ["b"]) == keys[2:]
    assert digests(("q", "model", "float"), ["a"])[0] != keys[0]
    assert digests(("p", "model", "base64"), ["a"])[0] != keys[0]


def test_the_cache_status_travels_with_the_ended_request_events_and_followers_see() -> None:
    from server.types import Call, Caller, Outcome, ended_request

    call = Call(request_id="req_1", endpoint="embeddings", model="emb", body={})
    outcome = Outcome(status="ok", http_status=200, cache_status="HIT")
    assert ended_request(Caller("prj_a", "key_a", "127.0.0.1"), call, outcome)["cache_status"] == "HIT"


def test_a_batch_token_count_is_shared_by_weight_and_adds_up() -> None:
    from server.cache_policy import apportion

    assert apportion(7, [3]) == [7]
    assert apportion(10, [1, 1, 2]) == [3, 2, 5]  # 2.5, 2.5, 5: the first of equal remainders gets the token
    shares = apportion(1001, [5, 17, 1, 250, 33])
    assert sum(shares) == 1001 and shares[3] == max(shares)
    assert apportion(5, [0, 0]) == [3, 2] and apportion(0, [4, 2]) == [0, 0] and apportion(3, []) == []
