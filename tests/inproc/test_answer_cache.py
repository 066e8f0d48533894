"""The answer cache through the real app: embeddings per input item, chat opt-in, billed at the cache rate."""

from __future__ import annotations

import base64
import json
import sqlite3
import struct
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tests.inproc.harness import BASE_CONFIG, auth, running, upstream_counted, upstream_received
from tests.upstreams.openai_upstream import expected_embedding

CONFIG = (
    BASE_CONFIG
    + """
[[models]]
name = "emb"
targets = ["up:text-embedding-3-small"]
price = { input = 2, cache_hit = 0.5 }
capabilities = ["embeddings"]

[[models]]
name = "emb-uncached"
targets = ["up:text-embedding-3-small"]
price = { input = 2 }
capabilities = ["embeddings"]
cache = { ttl_s = 0 }

[[models]]
name = "chat-cached"
targets = ["up:gpt-4o-mini"]
price = { input = 1, output = 2, cache_hit = 0.25 }
cache = { ttl_s = 600 }

[[models]]
name = "chat-plain"
targets = ["up:gpt-4o-mini"]
price = { input = 1, output = 2 }
"""
)
INPUT_RATE, HIT_RATE = 2_000_000, 500_000  # micro per 1M tokens


def micro(miss_tokens: int, hit_tokens: int) -> int:
    return -(-(miss_tokens * INPUT_RATE + hit_tokens * HIT_RATE) // 1_000_000)


def rows(database: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as conn:
        return conn.execute(sql, args).fetchall()


def request_row(database: Path, request_id: str) -> dict[str, Any]:
    with sqlite3.connect(database) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute(
            "SELECT r.cache_status, r.provider, r.upstream_model, r.attempts, r.status, u.input_tokens,"
            " u.cost_micro, u.quantities, l.amount_micro AS debit FROM requests r"
            " JOIN usage u ON u.request_id = r.id JOIN ledger l ON l.source_id = r.id AND l.kind = 'usage'"
            " WHERE r.id = ?",
            (request_id,),
        ).fetchone()
    return dict(row)


async def embed(client: httpx.AsyncClient, key: str, inputs: Any, **extra: Any) -> httpx.Response:
    body = {"model": extra.pop("model", "emb"), "input": inputs, "encoding_format": "float", **extra}
    headers = {**auth(key), **extra.pop("headers", {})}
    answer = await client.post("/v1/embeddings", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer


async def test_a_batch_sends_only_its_misses_upstream_and_bills_hits_at_the_cache_rate(tmp_path: Path) -> None:
    async with running(tmp_path, CONFIG) as gw:
        await gw.project("p")
        key = await gw.key("p")
        warm = ["the quick brown fox", "jumps over", "the lazy dog and then some more words"]
        single_tokens = {}
        for text in warm:
            first = await embed(gw.client, key, text)
            assert first.headers["x-cache-status"] == "MISS"
            single_tokens[text] = first.json()["usage"]["prompt_tokens"]
        assert upstream_counted("embedded_inputs") == 3
        batch = ["new one", warm[2], "another new input", warm[0], "x", warm[1], "last new input here"]
        misses = [text for text in batch if text not in warm]
        answer = await embed(gw.client, key, batch)
        assert answer.headers["x-cache-status"] == "MISS"
        assert upstream_counted("embedded_inputs") == 3 + len(misses)
        assert upstream_received()[-1]["json"]["input"] == misses  # only the misses, in order
        body = answer.json()
        assert [d["index"] for d in body["data"]] == list(range(len(batch)))
        assert [d["embedding"] for d in body["data"]] == [expected_embedding(text) for text in batch]
        hit_tokens = sum(single_tokens.values())
        miss_tokens = sum(len(text) // 4 + 1 for text in misses)  # the stand-in's count
        assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] == hit_tokens + miss_tokens
        await gw.quiesce()
        row = request_row(gw.database, answer.headers["x-request-id"])
        assert row["cost_micro"] == micro(miss_tokens, hit_tokens) == -row["debit"]
        assert Decimal(answer.headers["x-credits-used"]) * 1_000_000 == row["cost_micro"]
        assert (row["cache_status"], row["provider"], row["input_tokens"]) == ("MISS", "up", hit_tokens + miss_tokens)
        assert json.loads(row["quantities"])["cache_hit_tokens"] == hit_tokens

        again = await embed(gw.client, key, batch)  # now every item is cached
        assert again.headers["x-cache-status"] == "HIT"
        assert upstream_counted("embedded_inputs") == 3 + len(misses)
        assert [d["embedding"] for d in again.json()["data"]] == [d["embedding"] for d in body["data"]]
        total = hit_tokens + miss_tokens  # the stored counts of a batch add up to what the upstream counted
        assert again.json()["usage"]["prompt_tokens"] == total
        assert again.headers["x-model-used"] == "text-embedding-3-small"
        await gw.quiesce()
        hit_row = request_row(gw.database, again.headers["x-request-id"])
        assert (hit_row["cache_status"], hit_row["provider"], hit_row["attempts"]) == ("HIT", "cache", "[]")
        assert hit_row["status"] == "ok" and hit_row["cost_micro"] == micro(0, total) == -hit_row["debit"]


async def test_encodings_and_dimensions_are_cached_apart_and_base64_round_trips(tmp_path: Path) -> None:
    async with running(tmp_path, CONFIG) as gw:
        await gw.project("p")
        key = await gw.key("p")
        await embed(gw.client, key, ["a", "b"])
        b64 = await embed(gw.client, key, ["a", "b"], encoding_format="base64")
        assert b64.headers["x-cache-status"] == "MISS" and upstream_counted("embedded_inputs") == 4
        cached = await embed(gw.client, key, ["b", "a"], encoding_format="base64")
        assert cached.headers["x-cache-status"] == "HIT" and upstream_counted("embedded_inputs") == 4
        vectors = [struct.unpack("<8f", base64.b64decode(d["embedding"])) for d in cached.json()["data"]]
        assert [list(v) for v in vectors] == [expected_embedding("b"), expected_embedding("a")]
        wider = await embed(gw.client, key, "a", dimensions=16)
        assert wider.headers["x-cache-status"] == "MISS" and len(wider.json()["data"][0]["embedding"]) == 16
        tokens = await embed(gw.client, key, [[1, 2, 3], [4, 5]])
        assert tokens.json()["usage"]["prompt_tokens"] == 5
        again = await embed(gw.client, key, [[4, 5], [1, 2, 3]])
        assert again.headers["x-cache-status"] == "HIT" and again.json()["usage"]["prompt_tokens"] == 5


async def test_another_project_never_hits_and_bypass_skips_the_cache(tmp_path: Path) -> None:
    async with running(tmp_path, CONFIG) as gw:
        await gw.project("first")
        await gw.project("second")
        first, second = await gw.key("first"), await gw.key("second")
        await embed(gw.client, first, ["shared words", "more shared words"])
        other = await embed(gw.client, second, ["shared words", "more shared words"])
        assert other.headers["x-cache-status"] == "MISS" and upstream_counted("embedded_inputs") == 4
        same_project_new_key = await gw.key("first")
        hit = await embed(gw.client, same_project_new_key, "shared words")
        assert hit.headers["x-cache-status"] == "HIT" and upstream_counted("embedded_inputs") == 4
        skipped = await embed(gw.client, first, "shared words", headers={"x-gateway-cache": "bypass"})
        assert skipped.headers["x-cache-status"] == "BYPASS" and upstream_counted("embedded_inputs") == 5
        off = await embed(gw.client, first, "shared words", model="emb-uncached")
        assert off.headers["x-cache-status"] == "BYPASS" and upstream_counted("embedded_inputs") == 6
        bad = await gw.client.post(
            "/v1/embeddings",
            json={"model": "emb", "input": "x"},
            headers={**auth(first), "x-gateway-cache": "sometimes"},
        )
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "x-gateway-cache"
        await gw.quiesce()
        statuses = rows(gw.database, "SELECT cache_status FROM requests WHERE endpoint = 'embeddings' ORDER BY rowid")
        assert [s for (s,) in statuses] == ["MISS", "MISS", "HIT", "BYPASS", "BYPASS"]


async def test_memory_stays_within_max_mb_and_the_oldest_entries_go_first(tmp_path: Path) -> None:
    async with running(tmp_path, CONFIG, "[cache]\nmax_mb = 1\n") as gw:
        await gw.project("p")
        key = await gw.key("p")
        cache = gw.gateway.path.caching.cache
        for batch in range(12):  # 12 x 16 vectors of 1024 floats: ~4 MiB as JSON
            await embed(gw.client, key, [f"item {batch}-{i}" for i in range(16)], dimensions=1024)
            assert cache.bytes <= 1 << 20
        assert cache.evictions > 0 and len(cache) < 12 * 16
        oldest = await embed(gw.client, key, "item 0-0", dimensions=1024)
        assert oldest.headers["x-cache-status"] == "MISS"
        newest = await embed(gw.client, key, "item 11-15", dimensions=1024)
        assert newest.headers["x-cache-status"] == "HIT"


async def test_max_mb_zero_turns_the_cache_off(tmp_path: Path) -> None:
    async with running(tmp_path, CONFIG, "[cache]\nmax_mb = 0\n") as gw:
        await gw.project("p")
        key = await gw.key("p")
        for _ in range(2):
            answer = await embed(gw.client, key, "same input")
            assert answer.headers["x-cache-status"] == "BYPASS"
        assert upstream_counted("embedded_inputs") == 2


CHAT = {"messages": [{"role": "user", "content": "cache me if you can"}]}


async def chat(gw: Any, key: str, headers: dict[str, str] | None = None, **body: Any) -> httpx.Response:
    answer = await gw.client.post(
        "/v1/chat/completions", json={"model": "chat-cached", **CHAT, **body}, headers={**auth(key), **(headers or {})}
    )
    assert answer.status_code == 200, answer.text
    return answer


async def test_chat_answers_are_cached_for_temperature_zero_or_on_request(tmp_path: Path) -> None:
    async with running(tmp_path, CONFIG) as gw:
        await gw.project("p")
        key = await gw.key("p")
        first = await chat(gw, key, temperature=0, user="alice")
        assert first.headers["x-cache-status"] == "MISS" and len(upstream_received()) == 1
        second = await chat(gw, key, temperature=0, user="bob")  # `user` does not change the answer
        assert second.headers["x-cache-status"] == "HIT" and len(upstream_received()) == 1
        assert second.json()["choices"] == first.json()["choices"]
        usage = first.json()["usage"]
        tokens = usage["prompt_tokens"] + usage["completion_tokens"]
        assert second.json()["usage"]["prompt_tokens"] == usage["prompt_tokens"]
        await gw.quiesce()
        hit = request_row(gw.database, second.headers["x-request-id"])
        assert (hit["cache_status"], hit["provider"], hit["attempts"]) == ("HIT", "cache", "[]")
        assert hit["cost_micro"] == -(-tokens * 250_000 // 1_000_000) == -hit["debit"]

        assert (await chat(gw, key, temperature=0, n=2)).headers["x-cache-status"] == "MISS"  # n matters
        assert (await chat(gw, key)).headers["x-cache-status"] == "BYPASS"  # no temperature: 1 by default
        assert (await chat(gw, key, temperature=0.7)).headers["x-cache-status"] == "BYPASS"
        use = {"x-gateway-cache": "use"}
        assert (await chat(gw, key, use, temperature=0.7)).headers["x-cache-status"] == "MISS"
        assert (await chat(gw, key, use, temperature=0.7)).headers["x-cache-status"] == "HIT"
        skip = {"x-gateway-cache": "no-store"}
        assert (await chat(gw, key, skip, temperature=0)).headers["x-cache-status"] == "BYPASS"
        calls = len(upstream_received())
        assert calls == 6  # every MISS and BYPASS above, no HIT
        streamed = await gw.client.post(
            "/v1/chat/completions",
            json={"model": "chat-cached", **CHAT, "temperature": 0, "stream": True},
            headers=auth(key),
        )
        assert streamed.headers["x-cache-status"] == "BYPASS" and len(upstream_received()) == calls + 1
        plain = await gw.client.post(
            "/v1/chat/completions", json={"model": "chat-plain", **CHAT, "temperature": 0}, headers=auth(key)
        )
        assert "x-cache-status" not in plain.headers
        other_project = await gw.project("q") and await gw.key("q")
        assert (await chat(gw, other_project, temperature=0)).headers["x-cache-status"] == "MISS"
        await gw.quiesce()
        assert rows(gw.database, "SELECT cache_status FROM requests WHERE model = 'chat-plain'") == [(None,)]
        assert rows(gw.database, "SELECT cache_status FROM requests WHERE stream = 1") == [("BYPASS",)]


async def test_wallet_debit_header_for_prepaid_projects_equals_the_ledger_debit(tmp_path: Path) -> None:
    async with running(tmp_path, CONFIG) as gw:
        await gw.project("pre", billing="prepaid")
        await gw.project("post")
        credited = await gw.admin.post("/admin/v1/wallet/pre/credit", json={"amount": "5", "reason": "test"})
        assert credited.status_code == 201
        pre, post = await gw.key("pre"), await gw.key("post")
        paid = await chat(gw, pre, headers={"x-gateway-cache": "bypass"})
        await gw.quiesce()
        row = request_row(gw.database, paid.headers["x-request-id"])
        assert row["debit"] < 0 and paid.headers["x-wallet-debit"] == paid.headers["x-credits-used"]
        assert Decimal(paid.headers["x-wallet-debit"]) * 1_000_000 == -row["debit"]
        assert "x-wallet-debit" not in (await chat(gw, post)).headers
        await embed(gw.client, pre, "x")
        hit = await embed(gw.client, pre, "x")
        assert hit.headers["x-cache-status"] == "HIT"
        assert hit.headers["x-wallet-debit"] == "0.000001"  # 1 token at 0.5 per 1M tokens, rounded up
        streamed = await gw.client.post(
            "/v1/chat/completions", json={"model": "chat-plain", **CHAT, "stream": True}, headers=auth(pre)
        )
        assert streamed.status_code == 200 and "x-wallet-debit" not in streamed.headers


async def test_a_replay_asks_the_upstream_again_and_stores_nothing(tmp_path: Path) -> None:
    async with running(tmp_path, CONFIG) as gw:
        await gw.project("p")
        key = await gw.key("p")
        first = await embed(gw.client, key, ["replayed words", "more words"])
        await gw.quiesce()
        replay = await gw.admin.post(f"/admin/v1/requests/{first.headers['x-request-id']}/replay", json={})
        assert replay.status_code == 200, replay.text
        assert upstream_counted("embedded_inputs") == 4  # not served from the cache
        pinned = await gw.admin.post(
            f"/admin/v1/requests/{first.headers['x-request-id']}/replay",
            json={"target": "up:another-embedding-model"},
        )
        assert pinned.status_code == 200 and upstream_counted("embedded_inputs") == 6
        after = await embed(gw.client, key, ["replayed words", "more words"])
        assert after.headers["x-cache-status"] == "HIT"
        assert after.json()["model"] == "text-embedding-3-small"  # the pinned target's answer was not stored
        await gw.quiesce()
        assert rows(gw.database, "SELECT cache_status FROM requests WHERE replay_of IS NOT NULL") == [("BYPASS",)] * 2
