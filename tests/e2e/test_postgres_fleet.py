"""Two gateway processes on one real PostgreSQL database (`[store] url`): the official openai SDK is
answered by either, every request and debit lands in the shared store (read back through the other
process's admin API, `gatewayctl ledger verify` passes there), and when one process is killed with
SIGKILL mid-stream the other closes its pending requests: each stream billed for what it delivered, no
hold left open, the ledger still verifying."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections.abc import Iterator

import httpx
import openai
import psycopg
import pytest

from tests.conftest import UPSTREAM_KEY, upstream_config
from tests.support.gateway import GatewayProcess
from tests.support.services import Postgres
from tests.upstreams.openai_upstream import UpstreamProcess, start_upstream_process

MESSAGES = [{"role": "user", "content": "hello fleet"}]


@pytest.fixture(scope="module")
def slow_upstream() -> Iterator[UpstreamProcess]:
    up = start_upstream_process()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def fleet(
    postgres: Postgres, slow_upstream: UpstreamProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, GatewayProcess, str]]:
    url = postgres.create_database("e2e_fleet")
    config = upstream_config(slow_upstream) + f'\n[store]\nurl = "{url}"\ninstance_ttl_s = 2\n'
    env = {"TEST_UPSTREAM_KEY": UPSTREAM_KEY}
    first_dir, second_dir = tmp_path_factory.mktemp("gw-a"), tmp_path_factory.mktemp("gw-b")
    first = GatewayProcess(first_dir, config, env).start()
    shutil.copy(first_dir / "ledger.key", second_dir / "ledger.key")  # one installation: one ledger key
    key = first.new_key("fleet")  # before the second starts: it loads the catalog at start
    second = GatewayProcess(second_dir, config, env)
    second.admin_token = first.admin_token  # the admin token is in the shared store
    second.start()
    yield first, second, key
    first.stop()
    second.stop()


def test_the_openai_sdk_is_served_by_either_process_from_one_store(
    fleet: tuple[GatewayProcess, GatewayProcess, str],
) -> None:
    first, second, key = fleet
    ids = []
    for gateway in (first, second):
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
        reply = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
        assert reply.parse().choices[0].message.content
        ids.append(reply.headers["x-request-id"])
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
        )
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
        assert client.embeddings.create(model="text-embedding-3-small", input="hi").data
    for request_id in ids:  # each process sees what the other recorded
        for gateway in (first, second):
            shown = gateway.cli_json("requests", "show", request_id)
            assert shown["status"] == "ok" and shown["cost_micro"] > 0
    verify = second.cli_json("ledger", "verify")
    assert verify["ok"] is True
    doctor = json.loads(first.cli("doctor", "--config", str(first.config), "--json", check=False).stdout)
    checks = {check["name"]: check for check in doctor["checks"]}
    assert checks["database"]["status"] == "ok", checks["database"]
    assert "schema current, 2 gateway process(es) live" in checks["database"]["detail"]


def test_a_process_killed_mid_stream_has_its_requests_closed_by_the_other(
    fleet: tuple[GatewayProcess, GatewayProcess, str], slow_upstream: UpstreamProcess, postgres: Postgres
) -> None:
    first, second, key = fleet
    slow_upstream.set_behavior(reply_words=400, chunk_delay_ms=20)  # ~8 s per stream: mid-flight at the kill
    try:
        received = asyncio.run(_streams_until_killed(first, key, 4))
    finally:
        slow_upstream.set_behavior(reply_words=None, chunk_delay_ms=0)
    assert len(received) == 4
    url = postgres.url("e2e_fleet")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the survivor's next lease round (every ttl/3) closes them
        with psycopg.connect(url) as conn:
            pending = conn.execute("SELECT COUNT(*) FROM requests WHERE status = 'pending'").fetchone()
        if pending == (0,):
            break
        time.sleep(0.2)
    with psycopg.connect(url) as conn:
        billed = conn.execute(
            "SELECT r.client_request_id, u.cost_micro FROM requests r JOIN usage u ON u.request_id = r.id"
            " WHERE r.status = 'interrupted' AND u.estimated = 1"
        ).fetchall()
        open_holds = conn.execute("SELECT COUNT(*) FROM holds WHERE status = 'open'").fetchone()
    assert pending == (0,) and open_holds == (0,)
    assert {request_id for request_id, _ in billed} == set(received) and all(cost > 0 for _, cost in billed)
    assert second.cli_json("ledger", "verify")["ok"] is True


async def _streams_until_killed(gateway: GatewayProcess, key: str, count: int) -> dict[str, int]:
    received: dict[str, int] = {}
    started = asyncio.Event()
    async with httpx.AsyncClient(timeout=30) as http:

        async def one(request_id: str) -> None:
            body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": request_id}]}
            headers = {"authorization": f"Bearer {key}", "x-request-id": request_id}
            try:
                async with http.stream(
                    "POST", f"{gateway.url}/v1/chat/completions", json=body, headers=headers
                ) as answer:
                    async for line in answer.aiter_lines():
                        if line.startswith("data: {"):
                            received[request_id] = received.get(request_id, 0) + len(line)
                            if len(received) == count:
                                started.set()
            except httpx.HTTPError:
                pass

        tasks = [asyncio.create_task(one(str(uuid.uuid4()))) for _ in range(count)]
        await asyncio.wait_for(started.wait(), 20)
        await asyncio.sleep(0.3)  # let a checkpoint land while content flows
        gateway.kill9()
        await asyncio.gather(*tasks)
    return received
