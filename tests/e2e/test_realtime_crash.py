"""Realtime sessions across a crash and a graceful stop, each on a gateway process of its own.

kill -9 mid-session, then a restart: the responses the client got are billed (the finished ones as reported,
the one cut by the crash from its checkpointed estimate, never zero), the session's row is closed, nothing
stays reserved and the ledger verifies. SIGTERM: the running response finishes, then the client is told
(`server_shutting_down`) and closed with 1012, and the process exits 0 within the grace.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.test_realtime import Realtime, _open, _say, _send, _until, running


@pytest.fixture()
def own(tmp_path: Path) -> Iterator[Realtime]:
    with running(tmp_path, "shutdown_grace_s = 5\n") as started:
        yield started


async def _two_text_responses_then_audio(ws: Any, audio_deltas: int) -> list[dict[str, Any]]:
    """Two text responses to their end, then an audio one until `audio_deltas` of it arrived."""
    dones = []
    await _send(ws, "session.update", session={"type": "realtime", "output_modalities": ["text"]})
    for n in range(2):
        await _send(ws, "conversation.item.create", **_say(f"turn {n}"))
        await _send(ws, "response.create")
        done, _ = await _until(ws, "response.done")
        dones.append(done)
    await _send(ws, "response.create", response={"output_modalities": ["audio"]})
    got = 0
    while got < audio_deltas:
        event = json.loads(await ws.recv())
        got += event["type"] == "response.output_audio.delta"
    return dones


def _open_holds(database: Path) -> int:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM holds WHERE status = 'open'").fetchone()[0])


def test_kill9_mid_session_bills_what_was_delivered_and_leaves_nothing_reserved(own: Realtime) -> None:
    key = own.project("crash")
    before = own.balance("crash")
    own.up.set_behavior(audio_chunks=200, chunk_bytes=4800, chunk_delay_ms=50)

    async def run() -> tuple[str, list[dict[str, Any]]]:
        ws = await _open(own.ws_url, key, "up-realtime")
        dones = await _two_text_responses_then_audio(ws, audio_deltas=15)
        await asyncio.sleep(0.8)  # past a checkpoint of the running response
        own.gw.kill9()
        ws.transport.abort()
        return ws.response.headers["x-request-id"], dones

    session_id, dones = asyncio.run(run())
    reported = [round(float(d["response"]["usage"]["cost"]) * 1_000_000) for d in dones]
    own.gw.start()
    shown = own.request(session_id)
    assert shown["status"] == "interrupted"
    responses = shown["responses"]
    assert [r["status"] for r in responses] == ["ok", "ok", "interrupted"]
    assert [r["cost_micro"] for r in responses[:2]] == reported
    cut = responses[2]
    assert cut["estimated"] and cut["cost_micro"] > 0 and cut["output_tokens"] >= 15 * 2  # 100 ms a delta
    assert _open_holds(own.gw.database) == 0
    assert own.gw.cli_json("wallet", "balance", "--project", "crash")["reserved_micro"] == 0
    assert before - own.balance("crash") == sum(r["cost_micro"] for r in responses)
    own.gw.cli("ledger", "verify")


def test_sigterm_lets_the_running_response_finish_then_closes_the_session(own: Realtime) -> None:
    key = own.project("stopping")
    own.up.set_behavior(audio_chunks=20, chunk_bytes=4800, chunk_delay_ms=50)
    assert own.gw.proc is not None

    async def run() -> tuple[list[str], dict[str, Any], int | None, float]:
        ws = await _open(own.ws_url, key, "up-realtime")
        await _two_text_responses_then_audio(ws, audio_deltas=2)
        own.gw.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        started = time.monotonic()
        kinds: list[str] = []
        error: dict[str, Any] = {}
        try:
            async with asyncio.timeout(10):
                while True:
                    event = json.loads(await ws.recv())
                    kinds.append(event["type"])
                    if event["type"] == "error":
                        error = event
        except ConnectionClosed:
            pass
        return kinds, error, ws.close_code, time.monotonic() - started

    kinds, error, code, elapsed = asyncio.run(run())
    assert "response.done" in kinds and kinds.index("response.done") < kinds.index("error")
    assert error["error"]["code"] == "server_shutting_down" and code == 1012
    assert elapsed < 5
    assert own.gw.proc.wait(timeout=10) == 0
    assert _open_holds(own.gw.database) == 0
