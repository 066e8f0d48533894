"""/metrics in process: calls made with the official openai SDK are counted exactly (by model, front door
and outcome), tokens and spend equal what the answers reported, a model name a client made up never
becomes a label, and `[metrics]` decides who may scrape and where (admin token, public, a port of its own,
off). Scrapes are parsed with prometheus_client's own parser."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.metrics import Metrics
from tests.inproc.harness import BASE_CONFIG, running, upstream_behavior
from tests.support.gateway import free_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def label_values(samples: Samples) -> set[str]:
    return {v for _, labels in samples for _, v in labels}


async def test_sdk_calls_are_counted_by_model_and_status_with_their_tokens_and_spend(tmp_path: Path) -> None:
    async with running(tmp_path) as gw:
        await gw.project("metered")
        client = gw.openai(await gw.key("metered"))
        usages = []
        for n in range(3):
            reply = await client.chat.completions.create(
                model="mock-chat", messages=[{"role": "user", "content": f"count me {n}"}]
            )
            usages.append(reply.usage)
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "stream me"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            if chunk.usage is not None:
                usages.append(chunk.usage)
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(
                model="made-up-model-7f3a", messages=[{"role": "user", "content": "who?"}]
            )
        with pytest.raises(openai.AuthenticationError):
            await gw.openai("gw_live_" + "x" * 43).chat.completions.create(model="mock-chat", messages=[])
        upstream_behavior(status=500)
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
        upstream_behavior()
        await gw.quiesce()

        samples = parse((await gw.admin.get("/metrics")).raise_for_status().text)

    requests = "gateway_requests_total"
    assert value(samples, requests, model="mock-chat", endpoint="chat", status="ok") == 3
    assert value(samples, requests, model="gpt-4o-mini", endpoint="chat", status="ok") == 1
    assert value(samples, requests, model="gpt-4o-mini", endpoint="chat", status="upstream_failed") == 1
    assert value(samples, requests, model="unknown", endpoint="chat", status="refused") == 1
    assert value(samples, "gateway_refusals_total", code="model_not_found") == 1
    assert value(samples, "gateway_refusals_total", code="invalid_api_key") == 1
    assert sum(v for (name, _), v in samples.items() if name == requests) == 3 + 1 + 1 + 1  # not the bad key's
    assert "made-up-model-7f3a" not in label_values(samples)

    assert len(usages) == 4
    for kind, field in (("input", "prompt_tokens"), ("output", "completion_tokens")):
        counted = value(samples, "gateway_tokens_total", model="mock-chat", kind=kind)
        counted += value(samples, "gateway_tokens_total", model="gpt-4o-mini", kind=kind)
        assert counted == sum(getattr(u, field) for u in usages) > 0
    spend = value(samples, "gateway_spend_micro_total", model="mock-chat")
    spend += value(samples, "gateway_spend_micro_total", model="gpt-4o-mini")
    assert spend == round(sum(u.model_extra["cost"] for u in usages) * 1_000_000) > 0

    assert value(samples, "gateway_overhead_seconds_count", endpoint="chat", mode="unary") == 3
    assert value(samples, "gateway_overhead_seconds_count", endpoint="chat", mode="stream") == 1
    assert value(samples, "gateway_upstream_seconds_count", provider="mock") == 3
    assert value(samples, "gateway_upstream_seconds_count", provider="up") == 1 + 2  # the failed call: 1 + 1 retry
    assert value(samples, "gateway_store_commit_seconds_count") >= 1
    assert value(samples, "gateway_open_reservations") == 0
    assert ("gateway_store_queued_writes", frozenset()) in samples


FALLBACK_CONFIG = (
    BASE_CONFIG
    + """
[[models]]
name = "sturdy"
targets = ["up:gpt-4o-mini", "mock:mock-chat"]

[routing]
retries = 0
cooldown_failures = 2
cooldown_seconds = 60
"""
)


async def test_fallbacks_and_cooldowns_are_counted(tmp_path: Path) -> None:
    async with running(tmp_path, FALLBACK_CONFIG) as gw:
        await gw.project("shaky")
        client = gw.openai(await gw.key("shaky"))
        first = await client.chat.completions.with_raw_response.create(
            model="sturdy", messages=[{"role": "user", "content": "first target"}]
        )
        assert "x-fallback-depth" not in first.headers
        upstream_behavior(status=500)
        for _ in range(3):  # two failures start the cooldown; the third call skips the cooling provider
            answer = await client.chat.completions.with_raw_response.create(
                model="sturdy", messages=[{"role": "user", "content": "fall back"}]
            )
            assert answer.headers["x-fallback-depth"] == "1"
        samples = parse((await gw.admin.get("/metrics")).text)
    assert value(samples, "gateway_requests_total", model="sturdy", endpoint="chat", status="ok") == 4
    assert value(samples, "gateway_fallbacks_total", model="sturdy") == 3
    assert value(samples, "gateway_cooldowns_total", provider="up") == 1
    assert value(samples, "gateway_provider_cooling", provider="up") == 1
    assert value(samples, "gateway_provider_cooling", provider="mock") == 0
    assert value(samples, "gateway_upstream_seconds_count", provider="up") == 1 + 2


async def test_scraping_needs_the_admin_token_unless_public(tmp_path: Path) -> None:
    (tmp_path / "guarded").mkdir()
    (tmp_path / "public").mkdir()
    async with running(tmp_path / "guarded") as gw:
        refused = await gw.client.get("/metrics")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_admin_token"
        key = await gw.key((await gw.project("p"))["name"])
        assert (await gw.client.get("/metrics", headers={"authorization": f"Bearer {key}"})).status_code == 401
        scraped = await gw.admin.get("/metrics")
        assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
    async with running(tmp_path / "public", BASE_CONFIG + "\n[metrics]\npublic = true\n") as gw:
        scraped = await gw.client.get("/metrics")
        assert scraped.status_code == 200 and "gateway_requests_total" in scraped.text


async def test_disabled_metrics_have_no_route(tmp_path: Path) -> None:
    async with running(tmp_path, BASE_CONFIG + "\n[metrics]\nenabled = false\npublic = true\n") as gw:
        assert (await gw.admin.get("/metrics")).status_code == 404
        assert (await gw.client.get("/metrics")).status_code == 404


async def test_a_metrics_port_serves_them_apart_and_the_main_port_does_not(tmp_path: Path) -> None:
    port = free_port()
    async with running(tmp_path, BASE_CONFIG + f"\n[metrics]\nport = {port}\n") as gw:
        assert (await gw.admin.get("/metrics")).status_code == 404
        token = gw.admin.headers["authorization"]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as apart:
            assert (await apart.get("/metrics")).status_code == 401
            assert (await apart.get("/other", headers={"authorization": token})).status_code == 404
            scraped = await apart.get("/metrics", headers={"authorization": token})
            assert scraped.status_code == 200
            assert ("gateway_open_reservations", frozenset()) in parse(scraped.text)
    with pytest.raises(httpx.ConnectError):  # closed with the app
        httpx.get(f"http://127.0.0.1:{port}/metrics")


def test_the_cache_hook_counts_only_known_results() -> None:
    metrics = Metrics()
    for result in ("HIT", "hit", "miss", "BYPASS", "a-client-string"):
        metrics.cache_lookup(result)
    samples = parse(metrics.exposition()[0].decode())
    assert value(samples, "gateway_cache_lookups_total", result="hit") == 2
    assert value(samples, "gateway_cache_lookups_total", result="miss") == 1
    assert value(samples, "gateway_cache_lookups_total", result="bypass") == 1
    assert "a-client-string" not in label_values(samples)


async def test_embeddings_cache_lookups_are_counted(tmp_path: Path) -> None:
    config = (
        BASE_CONFIG
        + '\n[[models]]\nname = "mock-embed"\ntargets = ["mock:mock-embed"]\ncapabilities = ["embeddings"]\n'
    )
    async with running(tmp_path, config) as gw:
        await gw.project("cached")
        client = gw.openai(await gw.key("cached"))
        for _ in range(2):
            await client.embeddings.create(model="mock-embed", input="the same words")
        samples = parse((await gw.admin.get("/metrics")).text)
    assert value(samples, "gateway_cache_lookups_total", result="miss") == 1
    assert value(samples, "gateway_cache_lookups_total", result="hit") == 1
