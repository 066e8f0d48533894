"""/metrics on a real server process (the session's shared gateway), scraped over HTTP and parsed with
prometheus_client's parser: the calls this test makes with the openai SDK move the counters by exactly
what they were, tokens by what the answers reported, and a model name a client made up is no label."""

from __future__ import annotations

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.gateway import GatewayProcess
from tests.upstreams.openai_upstream import UpstreamProcess

CHAT = "mock-chat"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(gateway: GatewayProcess) -> Samples:
    answer = httpx.get(f"{gateway.url}/metrics", headers={"authorization": f"Bearer {gateway.admin_token}"})
    answer.raise_for_status()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_count_the_sdk_calls_made_and_their_tokens(
    gateway: GatewayProcess, fresh_upstream: UpstreamProcess
) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.new_key("metrics"), max_retries=0)
    before = scrape(gateway)
    usages = [
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"n{n}"}]).usage
        for n in range(2)
    ]
    stream = client.chat.completions.create(
        model="mock-chat",
        messages=[{"role": "user", "content": "stream"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    usages += [chunk.usage for chunk in stream if chunk.usage is not None]
    embedded = client.embeddings.create(model="text-embedding-3-small", input=["one", "two"])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model-9c1e", messages=[{"role": "user", "content": "?"}])
    after = scrape(gateway)

    requests = "gateway_requests_total"
    assert moved(before, after, requests, model="gpt-4o-mini", endpoint="chat", status="ok") == 2
    assert moved(before, after, requests, model="mock-chat", endpoint="chat", status="ok") == 1
    assert moved(before, after, requests, model="text-embedding-3-small", endpoint="embeddings", status="ok") == 1
    assert moved(before, after, requests, model="unknown", endpoint="chat", status="refused") == 1
    assert all("no-such-model-9c1e" not in dict(labels).values() for _, labels in after)
    assert len(usages) == 3 and embedded.usage is not None
    for kind, field in (("input", "prompt_tokens"), ("output", "completion_tokens")):
        chats = sum(moved(before, after, "gateway_tokens_total", model=m, kind=kind) for m in ("gpt-4o-mini", CHAT))
        assert chats == sum(getattr(usage, field) for usage in usages) > 0
    assert moved(before, after, "gateway_tokens_total", model="text-embedding-3-small", kind="input") == (
        embedded.usage.prompt_tokens
    )
    assert moved(before, after, "gateway_overhead_seconds_count", endpoint="chat", mode="unary") == 2
    assert moved(before, after, "gateway_overhead_seconds_count", endpoint="chat", mode="stream") == 1


def test_metrics_need_the_admin_token(gateway: GatewayProcess) -> None:
    assert httpx.get(f"{gateway.url}/metrics").status_code == 401
    key = gateway.new_key("metrics")
    assert httpx.get(f"{gateway.url}/metrics", headers={"authorization": f"Bearer {key}"}).status_code == 401
