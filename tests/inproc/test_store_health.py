"""A store that cannot take writes (another process holds the lock) refuses calls before anything is paid
upstream, says so on /readyz, and recovers by itself; a stream it cannot record ends with an error event."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from tests.inproc.harness import BASE_CONFIG, InProc, running, upstream_behavior, upstream_received

FAST_LOCKS = "[storage]\nbusy_timeout_ms = 600\n"


async def _wait_ready(gw: InProc, ready: bool, within_s: float = 2.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        status = (await gw.client.get("/readyz")).status_code
        if (status == 200) == ready:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"/readyz did not become {'ready' if ready else 'not ready'} within {within_s}s")


async def test_a_locked_database_refuses_before_forwarding_and_recovers(tmp_path: Path) -> None:
    async with running(tmp_path, BASE_CONFIG, FAST_LOCKS) as gw:
        await gw.project("p")
        key = await gw.key("p")
        assert (await gw.chat(key, model="gpt-4o-mini")).status_code == 200
        upstream_received().clear()
        other = sqlite3.connect(gw.database, isolation_level=None)  # another process's long write transaction
        other.execute("BEGIN IMMEDIATE")
        try:
            await _wait_ready(gw, ready=False)
            for stream in (False, True):
                answer = await gw.chat(key, model="gpt-4o-mini", stream=stream)
                assert answer.status_code == 503, answer.text
                assert answer.json()["error"]["code"] == "metering_unavailable"
            assert upstream_received() == []  # nothing was paid upstream
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert await _wait_ready(gw, ready=True) < 1.0
        assert (await gw.chat(key, model="gpt-4o-mini")).status_code == 200
        await gw.quiesce()
        assert gw.gateway.budgets.open_holds == 0


async def test_a_stream_that_cannot_be_recorded_ends_with_an_error_and_is_billed_later(tmp_path: Path) -> None:
    async with running(tmp_path, BASE_CONFIG, FAST_LOCKS) as gw:
        project = await gw.project("p")
        key = await gw.key("p")
        upstream_behavior(reply_words=12, chunk_delay_ms=60)
        other = sqlite3.connect(gw.database, isolation_level=None)

        async def lock_soon() -> None:
            await asyncio.sleep(0.25)  # the intent is durable by now; the stream is under way
            other.execute("BEGIN IMMEDIATE")

        locker = asyncio.create_task(lock_soon())
        answer = await gw.chat(key, model="gpt-4o-mini", stream=True)
        await locker
        assert answer.status_code == 200
        assert "[DONE]" not in answer.text and "metering_unavailable" in answer.text  # no clean finish
        assert "w5" in answer.text  # the content was delivered before the end could not be recorded
        other.execute("ROLLBACK")
        other.close()
        await _wait_ready(gw, ready=True)
        for _ in range(40):  # the kept closing is written once the store recovers
            await asyncio.sleep(0.05)
            with sqlite3.connect(gw.database) as conn:
                rows = conn.execute("SELECT output_tokens FROM usage WHERE project_id = ?", (project["id"],)).fetchall()
            if rows:
                break
        assert rows and rows[0][0] >= 12
        with sqlite3.connect(gw.database) as conn:
            assert conn.execute("SELECT COUNT(*) FROM holds WHERE status = 'open'").fetchone()[0] == 0
