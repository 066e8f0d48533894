"""Job rules, in process: a job past `[jobs] timeout_s` fails unbilled with its reservation released; a
job the provider refuses fails at once; a job is submitted with its id as the Idempotency-Key."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from tests.inproc.harness import BASE_CONFIG, auth, running, upstream_behavior, upstream_received

CONFIG = (
    BASE_CONFIG
    + """
[jobs]
poll_interval_s = 0.05
timeout_s = 1

[[models]]
name = "vid"
targets = ["up:sora-2"]
price = { per_second_video = 0.5 }
"""
)


def _db(path: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, args).fetchall()


async def _ended(gw: Any, key: str, job_id: str) -> dict[str, Any]:
    for _ in range(200):
        job = (await gw.client.get(f"/v1/videos/generations/{job_id}", headers=auth(key))).json()
        if job["status"] in ("completed", "failed"):
            return dict(job)
        await asyncio.sleep(0.05)
    raise AssertionError("the job never ended")


async def test_a_job_past_its_timeout_fails_unbilled_and_releases_its_reservation(tmp_path: Path) -> None:
    async with running(tmp_path, CONFIG) as gw:
        project = await gw.project("p", monthly_budget="10")
        key = await gw.key("p")
        upstream_behavior(video_queued_ms=60_000)  # never done in time
        created = await gw.client.post(
            "/v1/videos/generations", json={"model": "vid", "prompt": "slow", "seconds": 8}, headers=auth(key)
        )
        job = created.json()
        assert gw.gateway.budgets.reserved_project == {project["id"]: 4_000_000}  # 8 s at 0.5
        ended = await _ended(gw, key, job["job_id"])
        assert ended["error"]["code"] == "timeout" and ended["result"] is None
        await gw.quiesce()
        assert gw.gateway.budgets.reserved_project == {} and gw.gateway.budgets.open_holds == 0
        assert _db(gw.database, "SELECT COUNT(*) FROM usage") == [(0,)]
        assert _db(gw.database, "SELECT status FROM holds") == [("released",)]
        posts = [r for r in upstream_received() if r["path"] == "/v1/videos" and r["method"] == "POST"]
        assert [r["headers"]["idempotency-key"] for r in posts] == [job["job_id"]]


async def test_a_job_the_provider_refuses_fails_at_once(tmp_path: Path) -> None:
    async with running(tmp_path, CONFIG) as gw:
        await gw.project("p")
        key = await gw.key("p")
        upstream_behavior(status=400, times=1)
        created = await gw.client.post(
            "/v1/videos/generations", json={"model": "vid", "prompt": "refused"}, headers=auth(key)
        )
        ended = await _ended(gw, key, created.json()["job_id"])
        assert ended["error"]["code"] == "rejected"
        await gw.quiesce()
        assert _db(gw.database, "SELECT status, error_code FROM requests") == [("error", "job_failed")]
        assert _db(gw.database, "SELECT event_type FROM outbox WHERE event_type LIKE 'job.%'") == [("job.failed",)]
