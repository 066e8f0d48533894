"""A video job outlives kill -9 of the gateway: killed while the job is queued upstream and again while it
runs, the restarted server resumes polling it (never submitting it again), it finishes once and is billed
once; its reservation stays held across both restarts."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.support.gateway import GatewayProcess
from tests.upstreams.openai_upstream import UpstreamProcess, start_upstream_process


@pytest.fixture()
def upstream() -> Iterator[UpstreamProcess]:
    up = start_upstream_process()
    yield up
    up.stop()


def _one(gw: GatewayProcess, sql: str, args: tuple[Any, ...] = ()) -> Any:
    with sqlite3.connect(gw.database) as conn:
        found = conn.execute(sql, args).fetchone()
    return found[0] if found else None


def _wait(what: str, check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_video_job_survives_kill_9_while_queued_and_running_and_is_billed_once(
    upstream: UpstreamProcess, tmp_path: Any
) -> None:
    gw = GatewayProcess(
        tmp_path,
        f"""
[plans.default]
rpm = {{ video = 1000 }}

[jobs]
poll_interval_s = 0.2

[[providers]]
name = "up"
kind = "openai"
base_url = "{upstream.base_url}"
api_key_env = "CRASH_UPSTREAM_KEY"

[[models]]
name = "vid"
targets = ["up:sora-2"]
price = {{ per_second_video = 0.25 }}
""",
        {"CRASH_UPSTREAM_KEY": "sk-crash-standin"},
    )
    gw.start()
    try:
        key = gw.new_key("crash")
        upstream.set_behavior(video_queued_ms=4000, video_run_ms=4000)
        video = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0).videos.create(
            model="vid", prompt="a storm", seconds="4"
        )
        # queued upstream (its id recorded): the process dies
        _wait("the submission", lambda: _one(gw, "SELECT upstream_id FROM jobs WHERE id = ?", (video.id,)))
        gw.kill9()
        gw.start()
        assert _one(gw, "SELECT status FROM holds WHERE kind = 'job'") == "open"
        assert httpx.get(f"{gw.url}/readyz").json()["open_reservations"] == 1  # held across the restart
        # running upstream: it dies again
        _wait("the job to run", lambda: _one(gw, "SELECT status FROM jobs WHERE id = ?", (video.id,)) == "in_progress")
        gw.kill9()
        gw.start()
        _wait("the job to end", lambda: _one(gw, "SELECT completed_ms FROM jobs WHERE id = ?", (video.id,)))
        sdk = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)
        assert sdk.videos.retrieve(video.id).status == "completed"
        assert sdk.videos.download_content(video.id).read().startswith(b"\x00\x00\x00\x18ftyp")
        posts = [r for r in upstream.received() if r["method"] == "POST" and r["path"] == "/v1/videos"]
        assert len(posts) == 1  # submitted once, whatever happened to the gateway
        request_id = _one(gw, "SELECT request_id FROM jobs WHERE id = ?", (video.id,))
        assert _one(gw, "SELECT COUNT(*) FROM usage WHERE request_id = ?", (request_id,)) == 1
        assert _one(gw, "SELECT cost_micro FROM usage WHERE request_id = ?", (request_id,)) == 1_000_000
        assert _one(gw, "SELECT COUNT(*) FROM ledger WHERE kind = 'usage' AND source_id = ?", (request_id,)) == 1
        assert _one(gw, "SELECT status FROM holds WHERE id = ?", (request_id,)) == "settled"
        assert _one(gw, "SELECT COUNT(*) FROM outbox WHERE event_type = 'job.completed'") == 1
        assert _one(gw, "SELECT status FROM requests WHERE id = ?", (request_id,)) == "ok"
        assert httpx.get(f"{gw.url}/readyz").json()["open_reservations"] == 0
        gw.cli("ledger", "verify")
    finally:
        gw.stop()
