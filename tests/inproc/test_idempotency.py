"""Idempotency-Key: the first answer is stored with its charge and replayed, never charged twice."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from tests.inproc.harness import BASE_CONFIG, auth, running, upstream_behavior, upstream_received

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "once only"}]}


def _count(database: Path, sql: str) -> int:
    with sqlite3.connect(database) as conn:
        return int(conn.execute(sql).fetchone()[0])


async def test_ten_concurrent_retries_make_one_call_and_one_charge(tmp_path: Path) -> None:
    async with running(tmp_path, BASE_CONFIG) as gw:
        await gw.project("p")
        key = await gw.key("p")
        upstream_behavior(delay_ms=200)
        headers = {**auth(key), "idempotency-key": "order-42"}
        answers = await asyncio.gather(
            *(gw.client.post("/v1/chat/completions", json=BODY, headers=headers) for _ in range(10))
        )
        statuses = sorted(a.status_code for a in answers)
        assert statuses.count(200) >= 1 and set(statuses) <= {200, 409}, statuses
        assert all(a.headers.get("retry-after") for a in answers if a.status_code == 409)
        assert len(upstream_received()) == 1
        again = await gw.client.post("/v1/chat/completions", json=BODY, headers=headers)
        first = next(a for a in answers if a.status_code == 200 and "idempotent-replayed" not in a.headers)
        assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json() and len(upstream_received()) == 1
        await gw.quiesce()
        assert _count(gw.database, "SELECT COUNT(*) FROM usage") == 1
        assert _count(gw.database, "SELECT COUNT(*) FROM ledger WHERE kind = 'usage'") == 1
        mismatch = await gw.client.post("/v1/chat/completions", json={**BODY, "temperature": 0.5}, headers=headers)
        assert mismatch.status_code == 422 and mismatch.json()["error"]["code"] == "idempotency_key_mismatch"


async def test_a_failed_first_attempt_is_not_stored_and_answers_survive_a_restart(tmp_path: Path) -> None:
    async with running(tmp_path, BASE_CONFIG) as gw:
        await gw.project("p")
        key = await gw.key("p")
        headers = {**auth(key), "idempotency-key": "retry-me"}
        upstream_behavior(status=500, times=10)
        assert (await gw.client.post("/v1/chat/completions", json=BODY, headers=headers)).status_code >= 500
        upstream_behavior()
        answer = await gw.client.post("/v1/chat/completions", json=BODY, headers=headers)
        assert answer.status_code == 200 and "idempotent-replayed" not in answer.headers
        stream_headers = {**auth(key), "idempotency-key": "a-stream"}
        streamed = await gw.client.post("/v1/chat/completions", json={**BODY, "stream": True}, headers=stream_headers)
        assert streamed.status_code == 200 and streamed.text.endswith("data: [DONE]\n\n")
        calls = len(upstream_received())
    async with running(tmp_path, BASE_CONFIG, fresh=False) as again:
        key_headers = {**auth(key)}
        replay = await again.client.post(
            "/v1/chat/completions", json=BODY, headers={**key_headers, "idempotency-key": "retry-me"}
        )
        assert replay.status_code == 200 and replay.headers["idempotent-replayed"] == "true"
        assert replay.json() == answer.json()
        replayed_stream = await again.client.post(
            "/v1/chat/completions",
            json={**BODY, "stream": True},
            headers={**key_headers, "idempotency-key": "a-stream"},
        )
        assert replayed_stream.text == streamed.text  # the same event sequence, byte for byte
        assert len(upstream_received()) == calls  # neither replay called upstream
        other = await again.key("p")
        fresh = await again.client.post(
            "/v1/chat/completions", json=BODY, headers={**auth(other), "idempotency-key": "x" * 256}
        )
        assert fresh.status_code == 400
