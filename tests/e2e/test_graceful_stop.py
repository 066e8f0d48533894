"""Graceful stop and systemd notifications against a real `gatewayctl serve`.

SIGTERM during 50 streams: short ones finish with their final event inside `server.shutdown_grace_s`,
long ones get an error event when the grace runs out; every one is recorded and billed for what it
delivered, no hold stays open, the process exits 0 and leaves a database that passes integrity_check
with its WAL checkpointed away. With NOTIFY_SOCKET set, the server tells systemd READY, WATCHDOG,
RELOADING/READY around a SIGHUP, and STOPPING.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import UPSTREAM_KEY, upstream_config
from tests.support.gateway import GatewayProcess
from tests.upstreams.openai_upstream import UpstreamProcess

STREAMS, SHORT = 50, 25
GRACE_S = 1.5


async def _stream(client: httpx.AsyncClient, key: str, max_tokens: int, first: asyncio.Event) -> dict[str, Any]:
    body = {
        "model": "gpt-4o-mini",
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "stream please"}],
    }
    events: list[str] = []
    async with client.stream(
        "POST", "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
    ) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
                first.set()
    return {"id": response.headers["x-request-id"], "events": events, "short": max_tokens < 10}


async def _run_streams_and_stop(gw: GatewayProcess, key: str) -> list[dict[str, Any]]:
    limits = httpx.Limits(max_connections=STREAMS + 5)
    async with httpx.AsyncClient(base_url=gw.url, limits=limits, timeout=30) as client:
        firsts = [asyncio.Event() for _ in range(STREAMS)]
        tasks = [asyncio.create_task(_stream(client, key, 3 if i < SHORT else 40, firsts[i])) for i in range(STREAMS)]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in firsts)), 20)
        assert gw.proc is not None
        gw.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(asyncio.gather(*tasks), 30)


def _rows(database: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(database)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_sigterm_during_50_streams_finishes_or_ends_each_records_and_bills_all_and_exits_0(
    upstream: UpstreamProcess, tmp_path: Path
) -> None:
    gw = GatewayProcess(
        tmp_path, upstream_config(upstream), {"TEST_UPSTREAM_KEY": UPSTREAM_KEY}, f"shutdown_grace_s = {GRACE_S}\n"
    ).start()
    try:
        key = gw.new_key("draining")
        upstream.clear()
        upstream.set_behavior(reply_words=40, chunk_delay_ms=100)  # 3 tokens: ~0.5 s; 40 tokens: ~4 s
        started = time.monotonic()
        results = asyncio.run(_run_streams_and_stop(gw, key))
        assert gw.proc is not None
        assert gw.proc.wait(timeout=30) == 0
        stopped_after = time.monotonic() - started
    finally:
        upstream.clear()
        gw.stop()
    assert stopped_after < GRACE_S + 6
    finished = [r for r in results if r["events"][-1] == "[DONE]"]
    ended = [r for r in results if r["events"][-1] != "[DONE]"]
    assert {r["id"] for r in finished} == {r["id"] for r in results if r["short"]}
    for result in ended:
        error = json.loads(result["events"][-1])["error"]
        assert error["code"] == "server_shutting_down", error
        assert len(result["events"]) > 2  # it had delivered content before the grace ran out
    database = gw.database
    assert _rows(database, "PRAGMA integrity_check") == [("ok",)]
    wal = database.with_name(database.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    ids = ", ".join(f"'{r['id']}'" for r in results)
    rows = _rows(
        database,
        "SELECT r.id, r.status, r.error_code, u.cost_micro, u.estimated, l.amount_micro FROM requests r"
        " JOIN usage u ON u.request_id = r.id JOIN ledger l ON l.kind = 'usage' AND l.source_id = r.id"
        f" WHERE r.id IN ({ids})",
    )
    assert len(rows) == STREAMS
    by_id = {row[0]: row for row in rows}
    for result in finished:
        assert by_id[result["id"]][1:3] == ("ok", None)
    for result in ended:
        assert by_id[result["id"]][1:3] == ("interrupted", "server_shutting_down")
    assert all(row[3] > 0 and row[5] == -row[3] for row in rows)  # billed, and debited in the ledger
    assert _rows(database, "SELECT COUNT(*) FROM holds WHERE status = 'open'") == [(0,)]
    assert _rows(database, "SELECT COUNT(*) FROM requests WHERE status = 'pending'") == [(0,)]
    log = gw.log.read_text()
    assert f"stopping: {STREAMS} calls in flight" in log
    assert f"ending {len(ended)} open streams with an error event" in log
    gw.start()  # the next start finds nothing to recover, and the ledger verifies
    try:
        assert "interrupted by a crash" not in gw.log.read_text()
        assert gw.cli("ledger", "verify").returncode == 0
    finally:
        gw.stop()


def _datagrams(sock: socket.socket, until: str, timeout: float = 10.0) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            seen.append(sock.recv(4096).decode())
        except TimeoutError:
            break
        if until in seen[-1]:
            return seen
    raise AssertionError(f"{until!r} never arrived; got {seen}")


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="sd_notify needs AF_UNIX sockets")
def test_the_server_tells_systemd_ready_watchdog_reloading_and_stopping(tmp_path: Path) -> None:
    from tests.support.gateway import MOCK_CONFIG

    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"}
        gw = GatewayProcess(tmp_path, MOCK_CONFIG, env)
        gw.start()
        try:
            assert any("READY=1" in m for m in _datagrams(sock, "READY=1"))
            assert sum("WATCHDOG=1" in m for m in _datagrams(sock, "WATCHDOG=1")) >= 1
            assert gw.proc is not None
            os.kill(gw.proc.pid, signal.SIGHUP)
            messages = _datagrams(sock, "READY=1")
            reloading = next(i for i, m in enumerate(messages) if "RELOADING=1" in m)
            assert "MONOTONIC_USEC=" in messages[reloading]
            assert any("READY=1" in m for m in messages[reloading + 1 :])
            gw.proc.send_signal(signal.SIGTERM)
            assert any("STOPPING=1" in m for m in _datagrams(sock, "STOPPING=1"))
            assert gw.proc.wait(timeout=20) == 0
        finally:
            gw.stop()
