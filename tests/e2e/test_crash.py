"""kill -9 under load: every request a client saw succeed has exactly one usage row; nothing stays open."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests.conftest import upstream_config
from tests.support.gateway import GatewayProcess
from tests.upstreams.openai_upstream import UpstreamProcess, start_upstream_process

REQUESTS = 200


@pytest.fixture()
def slow_upstream() -> Iterator[UpstreamProcess]:
    up = start_upstream_process()
    up.set_behavior(delay_ms=300)  # keep many requests in flight when the gateway dies
    yield up
    up.stop()


def _pending(gateway: GatewayProcess) -> int:
    """Committed intents not yet closed (read beside the writer: WAL)."""
    try:
        with closing(sqlite3.connect(f"file:{gateway.database}?mode=ro", uri=True, timeout=1)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM requests WHERE status = 'pending'").fetchone()[0])
    except sqlite3.Error:
        return 0


async def _load(url: str, key: str, ids: list[str], gateway: GatewayProcess) -> dict[str, int]:
    statuses: dict[str, int] = {}
    limits = httpx.Limits(max_connections=REQUESTS)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:

        async def one(index: int, request_id: str) -> None:
            await asyncio.sleep(index * 0.002)  # arrivals over 0.4 s: ~150 in flight at the peak
            try:
                response = await http.post(
                    f"{url}/v1/chat/completions",
                    json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"crash {request_id}"}]},
                    headers={"authorization": f"Bearer {key}", "x-request-id": request_id},
                )
                statuses[request_id] = response.status_code
            except httpx.HTTPError:
                statuses[request_id] = 0

        async def killer() -> None:
            # Kill once enough were answered and several others are inside the gateway, their intents
            # committed (a loaded machine may otherwise leave the rest unread in the socket backlog).
            deadline = asyncio.get_running_loop().time() + 20
            while asyncio.get_running_loop().time() < deadline:
                if sum(1 for s in statuses.values() if s == 200) >= REQUESTS // 10 and _pending(gateway) >= 5:
                    break
                await asyncio.sleep(0.005)
            gateway.kill9()

        await asyncio.gather(killer(), *(one(n, i) for n, i in enumerate(ids)))
    return statuses


def test_kill_9_mid_load_loses_no_acknowledged_usage(slow_upstream: UpstreamProcess, tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path, upstream_config(slow_upstream), {"TEST_UPSTREAM_KEY": "sk-x"}).start()
    try:
        key = gateway.new_key("crash")
        ids = [str(uuid.uuid4()) for _ in range(REQUESTS)]
        statuses = asyncio.run(_load(gateway.url, key, ids, gateway))
        ok = [i for i, s in statuses.items() if s == 200]
        failed = [i for i, s in statuses.items() if s != 200]
        assert len(ok) >= REQUESTS // 10 and failed, "the kill must land mid-load"

        gateway.start()  # restart on the same database: closes interrupted intents
        conn = sqlite3.connect(gateway.database)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("SELECT COUNT(*) FROM requests WHERE status = 'pending'").fetchone()[0] == 0
            rows = dict(
                conn.execute(
                    "SELECT r.client_request_id, COUNT(u.request_id) FROM requests r"
                    " LEFT JOIN usage u ON u.request_id = r.id WHERE r.project_id IS NOT NULL"
                    " GROUP BY r.client_request_id"
                ).fetchall()
            )
            costs = dict(
                conn.execute(
                    "SELECT r.client_request_id, u.cost_micro FROM usage u JOIN requests r ON r.id = u.request_id"
                ).fetchall()
            )
            interrupted = conn.execute("SELECT COUNT(*) FROM requests WHERE status = 'interrupted'").fetchone()[0]
            unmatched_debits = conn.execute(
                "SELECT COUNT(*) FROM usage u WHERE (SELECT COUNT(*) FROM ledger l WHERE l.kind = 'usage'"
                " AND l.source_id = u.request_id AND l.amount_micro = -u.cost_micro) != 1"
            ).fetchone()[0]
            debits_without_usage = conn.execute(
                "SELECT COUNT(*) FROM ledger l WHERE l.kind = 'usage'"
                " AND NOT EXISTS (SELECT 1 FROM usage u WHERE u.request_id = l.source_id)"
            ).fetchone()[0]
        finally:
            conn.close()
        for request_id in ok:
            assert rows.get(request_id) == 1, f"{request_id} got 200 but has {rows.get(request_id)} usage rows"
            assert costs[request_id] > 0
        assert all(count <= 1 for count in rows.values())
        assert interrupted >= 1  # in-flight intents were closed at restart, not left open
        assert unmatched_debits == 0 and debits_without_usage == 0  # every usage row has exactly one debit
        verified = gateway.cli_json("ledger", "verify")
        assert verified["ok"] is True and verified["projects"][0]["entries"] == len(costs)
        assert gateway.admin(f"/requests/{ok[0]}")["status"] == "ok"
    finally:
        gateway.stop()


async def _streams_until_killed(url: str, key: str, gateway: GatewayProcess, count: int) -> dict[str, int]:
    """Open `count` streams, read each until some content arrived, then kill the gateway; returns the
    characters of content each stream received."""
    received: dict[str, int] = {}
    started = asyncio.Event()
    async with httpx.AsyncClient(timeout=30) as http:

        async def one(request_id: str) -> None:
            body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": request_id}]}
            headers = {"authorization": f"Bearer {key}", "x-request-id": request_id}
            try:
                async with http.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers) as answer:
                    async for line in answer.aiter_lines():
                        if line.startswith("data: {"):
                            received[request_id] = received.get(request_id, 0) + len(line)
                            if len(received) == count:
                                started.set()
            except httpx.HTTPError:
                pass

        tasks = [asyncio.create_task(one(str(uuid.uuid4()))) for _ in range(count)]
        await asyncio.wait_for(started.wait(), 20)
        await asyncio.sleep(0.3)  # let a checkpoint or two land while content flows
        gateway.kill9()
        await asyncio.gather(*tasks)
    return received


def test_kill_9_with_streams_mid_flight_bills_what_they_delivered(tmp_path: Path) -> None:
    up = start_upstream_process()
    up.set_behavior(reply_words=400, chunk_delay_ms=20)  # ~8 s per stream: all mid-flight at the kill
    gateway = GatewayProcess(tmp_path, upstream_config(up), {"TEST_UPSTREAM_KEY": "sk-x"}).start()
    try:
        key = gateway.new_key("crash-streams")
        received = asyncio.run(_streams_until_killed(gateway.url, key, gateway, 6))
        assert len(received) == 6 and all(received.values())
        gateway.start()
        conn = sqlite3.connect(gateway.database)
        try:
            billed = dict(
                conn.execute(
                    "SELECT r.client_request_id, u.output_tokens FROM requests r JOIN usage u ON u.request_id = r.id"
                    " WHERE r.status = 'interrupted' AND u.estimated = 1 AND u.cost_micro > 0"
                ).fetchall()
            )
            open_holds = conn.execute("SELECT COUNT(*) FROM holds WHERE status = 'open'").fetchone()[0]
        finally:
            conn.close()
        assert set(billed) == set(received), "every stream that delivered bytes is billed after the crash"
        assert all(tokens > 0 for tokens in billed.values())
        assert open_holds == 0
        assert gateway.cli_json("ledger", "verify")["ok"] is True
    finally:
        gateway.stop()
        up.stop()
