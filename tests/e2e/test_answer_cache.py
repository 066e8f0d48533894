"""The answer cache end to end: a real gateway process, the official openai SDK, the OpenAI stand-in counting
what it embeds. Embeddings per input item (only misses go upstream, hits billed at the cache rate), the
opt-in chat cache, the memory bound, and x-wallet-debit for prepaid projects."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import openai
import pytest

from tests.conftest import UPSTREAM_KEY, upstream_config
from tests.support.gateway import GatewayProcess
from tests.upstreams.openai_upstream import UpstreamProcess, expected_embedding

MODELS = """
[cache]
max_mb = 1

[[models]]
name = "embed-cached"
targets = ["up:text-embedding-3-small"]
price = { input = 2, cache_hit = 0.5 }
capabilities = ["embeddings"]

[[models]]
name = "chat-cached"
targets = ["up:gpt-4o-mini-2024-07-18"]
price = { input = 1, output = 2, cache_hit = 0.25 }
cache = { ttl_s = 600 }
"""
INPUT_RATE, HIT_RATE = 2_000_000, 500_000  # embed-cached, micro-units per 1M tokens


@pytest.fixture(scope="module")
def gw(upstream: UpstreamProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = upstream_config(upstream) + MODELS
    gateway = GatewayProcess(tmp_path_factory.mktemp("cache"), config, {"TEST_UPSTREAM_KEY": UPSTREAM_KEY}).start()
    yield gateway
    gateway.stop()


def sdk(gw: GatewayProcess, project: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.new_key(project), max_retries=0)


def embedded(up: UpstreamProcess) -> int:
    return up.counters().get("embedded_inputs", 0)


def row(gw: GatewayProcess, request_id: str) -> dict[str, Any]:
    return gw.admin(f"/requests/{request_id}")  # type: ignore[no-any-return]


def ledger_debit(gw: GatewayProcess, project: str, request_id: str) -> int:
    entries = gw.admin(f"/wallet/{project}/history?limit=1000")["data"]
    return -next(e["amount_micro"] for e in entries if e["source_id"] == request_id and e["kind"] == "usage")


def test_a_batch_embeds_only_its_misses_upstream_and_bills_hits_at_the_cache_rate(
    gw: GatewayProcess, fresh_upstream: UpstreamProcess
) -> None:
    client = sdk(gw, "cache-a")
    tag = uuid.uuid4().hex[:8]
    batch = [f"input number {i} of the batch {tag}" + " word" * i for i in range(10)]
    warm = [batch[1], batch[4], batch[8]]
    hit_tokens = 0
    for text in warm:
        single = client.embeddings.with_raw_response.create(model="embed-cached", input=text)
        assert single.headers["x-cache-status"] == "MISS"
        hit_tokens += single.parse().usage.prompt_tokens
    assert embedded(fresh_upstream) == 3

    raw = client.embeddings.with_raw_response.create(model="embed-cached", input=batch)  # base64, the SDK's default
    result = raw.parse()
    misses = [text for text in batch if text not in warm]
    assert raw.headers["x-cache-status"] == "MISS" and embedded(fresh_upstream) == 3 + len(misses)
    assert fresh_upstream.received()[-1]["json"]["input"] == misses
    assert [d.index for d in result.data] == list(range(10))
    assert [d.embedding for d in result.data] == [expected_embedding(text) for text in batch]  # float32, exact
    miss_tokens = result.usage.prompt_tokens - hit_tokens
    assert miss_tokens == sum(len(text) // 4 + 1 for text in misses)  # what the stand-in counted for them
    expected = -(-(miss_tokens * INPUT_RATE + hit_tokens * HIT_RATE) // 1_000_000)
    request_id = raw.headers["x-request-id"]
    recorded = row(gw, request_id)
    assert recorded["cost_micro"] == expected == ledger_debit(gw, "cache-a", request_id)
    assert Decimal(raw.headers["x-credits-used"]) * 1_000_000 == expected
    assert (recorded["cache_status"], recorded["provider"], len(recorded["attempts"])) == ("MISS", "up", 1)

    again = client.embeddings.with_raw_response.create(model="embed-cached", input=batch)
    assert again.headers["x-cache-status"] == "HIT" and embedded(fresh_upstream) == 3 + len(misses)
    assert [d.embedding for d in again.parse().data] == [d.embedding for d in result.data]
    assert again.parse().usage.prompt_tokens == result.usage.prompt_tokens
    hit_row = row(gw, again.headers["x-request-id"])
    assert (hit_row["cache_status"], hit_row["provider"], hit_row["attempts"]) == ("HIT", "cache", [])
    whole = -(-result.usage.prompt_tokens * HIT_RATE // 1_000_000)
    assert hit_row["cost_micro"] == whole == ledger_debit(gw, "cache-a", again.headers["x-request-id"])
    shown = gw.cli("requests", "show", again.headers["x-request-id"], "--no-bodies").stdout
    assert "cache" in shown and "HIT" in shown

    other = sdk(gw, "cache-b").embeddings.with_raw_response.create(model="embed-cached", input=batch)
    assert other.headers["x-cache-status"] == "MISS"  # another project never sees the first one's entries
    assert embedded(fresh_upstream) == 3 + len(misses) + len(batch)
    bypass = client.embeddings.with_raw_response.create(
        model="embed-cached", input=batch[0], extra_headers={"x-gateway-cache": "bypass"}
    )
    assert bypass.headers["x-cache-status"] == "BYPASS" and row(gw, bypass.headers["x-request-id"])["cache_status"]


def test_the_cache_stays_within_max_mb_dropping_the_oldest_entries(
    gw: GatewayProcess, fresh_upstream: UpstreamProcess
) -> None:
    client = sdk(gw, "cache-bound")
    tag = uuid.uuid4().hex[:8]
    for batch in range(12):  # 384 vectors of 1024 float32 as base64: ~2.2 MB against a 1 MiB bound
        inputs = [f"{tag} item {batch}-{i}" for i in range(32)]
        client.embeddings.create(model="embed-cached", input=inputs, dimensions=1024)
    assert embedded(fresh_upstream) == 384
    newest = client.embeddings.with_raw_response.create(
        model="embed-cached", input=f"{tag} item 11-31", dimensions=1024
    )
    assert newest.headers["x-cache-status"] == "HIT"
    oldest = client.embeddings.with_raw_response.create(model="embed-cached", input=f"{tag} item 0-0", dimensions=1024)
    assert oldest.headers["x-cache-status"] == "MISS" and embedded(fresh_upstream) == 385


MESSAGES = [{"role": "user", "content": "a question worth caching"}]


def test_chat_answers_are_cached_at_temperature_zero_or_on_request(
    gw: GatewayProcess, fresh_upstream: UpstreamProcess
) -> None:
    client = sdk(gw, "cache-chat")
    chat = client.chat.completions.with_raw_response
    first = chat.create(model="chat-cached", messages=MESSAGES, temperature=0)  # type: ignore[arg-type]
    second = chat.create(model="chat-cached", messages=MESSAGES, temperature=0)  # type: ignore[arg-type]
    assert (first.headers["x-cache-status"], second.headers["x-cache-status"]) == ("MISS", "HIT")
    assert len(fresh_upstream.received()) == 1
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    usage = first.parse().usage
    assert usage is not None
    hit_row = row(gw, second.headers["x-request-id"])
    tokens = usage.prompt_tokens + usage.completion_tokens
    assert (hit_row["cache_status"], hit_row["provider"], hit_row["attempts"]) == ("HIT", "cache", [])
    assert hit_row["cost_micro"] == -(-tokens * 250_000 // 1_000_000)

    use = {"x-gateway-cache": "use"}
    warm = chat.create(model="chat-cached", messages=MESSAGES, temperature=0.9, extra_headers=use)  # type: ignore[arg-type]
    hit = chat.create(model="chat-cached", messages=MESSAGES, temperature=0.9, extra_headers=use)  # type: ignore[arg-type]
    assert (warm.headers["x-cache-status"], hit.headers["x-cache-status"]) == ("MISS", "HIT")
    plain = chat.create(model="chat-cached", messages=MESSAGES)  # type: ignore[arg-type]
    skipped = chat.create(
        model="chat-cached",
        messages=MESSAGES,  # type: ignore[arg-type]
        temperature=0,
        extra_headers={"x-gateway-cache": "bypass"},
    )
    streamed = chat.create(model="chat-cached", messages=MESSAGES, temperature=0, stream=True)  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in streamed.parse() if c.choices)
    for answer in (plain, skipped, streamed):
        assert answer.headers["x-cache-status"] == "BYPASS"
        assert row(gw, answer.headers["x-request-id"])["cache_status"] == "BYPASS"
    assert len(fresh_upstream.received()) == 5  # first, warm, plain, skipped, streamed
    uncached = chat.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0)  # type: ignore[arg-type]
    assert "x-cache-status" not in uncached.headers


def test_x_wallet_debit_is_the_ledger_debit_for_prepaid_projects_only(
    gw: GatewayProcess, fresh_upstream: UpstreamProcess
) -> None:
    gw.cli_json("projects", "create", "cache-prepaid", "--billing", "prepaid")
    gw.cli_json("wallet", "credit", "--project", "cache-prepaid", "--amount", "5", "--reason", "test")
    prepaid, postpaid = sdk(gw, "cache-prepaid"), sdk(gw, "cache-postpaid")
    answer = prepaid.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    debit = ledger_debit(gw, "cache-prepaid", answer.headers["x-request-id"])
    assert debit > 0 and Decimal(answer.headers["x-wallet-debit"]) * 1_000_000 == debit
    embedding = prepaid.embeddings.with_raw_response.create(model="embed-cached", input="wallet words")
    assert Decimal(embedding.headers["x-wallet-debit"]) * 1_000_000 == ledger_debit(
        gw, "cache-prepaid", embedding.headers["x-request-id"]
    )
    post = postpaid.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert "x-wallet-debit" not in post.headers and "x-credits-used" in post.headers
