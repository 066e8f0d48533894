"""GET /v1/usage: exact totals over any window (whole hours from the rollups, the edges from the rows),
grouped by model, key and day, scoped to the calling key's project."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.inproc.harness import BASE_CONFIG, auth, running


def _debits(database: Path, project_id: str, start_ms: int, end_ms: int) -> int:
    with sqlite3.connect(database) as conn:
        return int(
            conn.execute(
                "SELECT COALESCE(SUM(-amount_micro), 0) FROM ledger WHERE project_id = ? AND kind = 'usage'"
                " AND created_ms >= ? AND created_ms < ?",
                (project_id, start_ms, end_ms),
            ).fetchone()[0]
        )


async def test_usage_totals_equal_the_ledger_and_are_scoped_to_the_project(tmp_path: Path) -> None:
    async with running(tmp_path, BASE_CONFIG) as gw:
        mine = await gw.project("mine")
        key_a, key_b = await gw.key("mine", name="a"), await gw.key("mine", name="b")
        other = await gw.key(str((await gw.project("other"))["name"]))
        started = int(time.time() * 1000)
        for key, model, n in ((key_a, "mock-chat", 3), (key_b, "mock-chat", 2), (key_a, "gpt-4o-mini", 2)):
            for _ in range(n):
                assert (await gw.chat(key, model=model)).status_code == 200
        assert (await gw.chat(other, model="mock-chat")).status_code == 200
        assert (await gw.chat(key_a, model="mock-chat", max_tokens="x")).status_code == 400  # never started
        await gw.quiesce()
        ended = int(time.time() * 1000) + 1
        params = {"start": str(started / 1000), "end": str(ended / 1000), "group_by": "model,key"}
        answer = await gw.client.get("/v1/usage", params=params, headers=auth(key_a))
        assert answer.status_code == 200, answer.text
        report = answer.json()
        assert report["object"] == "list" and len(report["data"]) == 3
        assert sum(row["requests"] for row in report["data"]) == 7  # the other project's call is not counted
        total = sum(row["cost_micro"] for row in report["data"])
        assert total == _debits(gw.database, mine["id"], started, ended) > 0
        for row in report["data"]:
            assert row["latency_ms"]["p50"] is not None and row["latency_ms"]["p95"] >= row["latency_ms"]["p50"]
            assert row["cost"] == row["cost_micro"] / 1_000_000
        by_day = (await gw.client.get("/v1/usage", params={**params, "group_by": "day"}, headers=auth(key_b))).json()
        assert [row["requests"] for row in by_day["data"]] == [7] and len(by_day["data"][0]["day"]) == 10
        filtered = await gw.client.get("/v1/usage", params={**params, "model": "gpt-4o-mini"}, headers=auth(key_a))
        assert [row["requests"] for row in filtered.json()["data"]] == [2]
        for bad in ({"group_by": "week"}, {"start": "yesterday"}, {"start": "10", "end": "5"}):
            assert (await gw.client.get("/v1/usage", params=bad, headers=auth(key_a))).status_code == 400


async def test_whole_hours_come_from_the_rollups_and_edges_from_the_rows(tmp_path: Path) -> None:
    """Rows written an hour apart: a window cutting both hours is still exact."""
    from server.store.sqlite.rollups import HOUR_MS, window

    async with running(tmp_path, BASE_CONFIG) as gw:
        project = await gw.project("p")
        key = await gw.key("p")
        for _ in range(4):
            assert (await gw.chat(key, model="mock-chat")).status_code == 200
        await gw.quiesce()
        with sqlite3.connect(gw.database) as conn:
            # move two of the four requests (and their rollup) two hours back, as if they were older
            old = conn.execute("SELECT id FROM requests ORDER BY started_ms LIMIT 2").fetchall()
            for (request_id,) in old:
                conn.execute(
                    "UPDATE requests SET started_ms = started_ms - ?, ended_ms = ended_ms - ? WHERE id = ?",
                    (2 * HOUR_MS, 2 * HOUR_MS, request_id),
                )
                conn.execute(
                    "UPDATE usage SET created_ms = created_ms - ? WHERE request_id = ?", (2 * HOUR_MS, request_id)
                )
            conn.execute("DELETE FROM usage_hours")
            conn.execute("DELETE FROM usage_days")
            from server.store.sqlite.rollups import add_to_rollup

            for key_id, model, status, started, ended, cost, created, tin, tout, cached in conn.execute(
                "SELECT r.key_id, r.model, r.status, r.started_ms, r.ended_ms, u.cost_micro, u.created_ms,"
                " u.input_tokens, u.output_tokens, u.cached_tokens FROM requests r JOIN usage u ON u.request_id = r.id"
            ).fetchall():
                add_to_rollup(
                    conn,
                    project["id"],
                    key_id,
                    model,
                    created,
                    status != "ok",
                    (tin, tout, cached),
                    cost,
                    ended - started,
                )
            everything = conn.execute("SELECT SUM(cost_micro) FROM usage").fetchone()[0]
            first = conn.execute("SELECT MIN(created_ms) FROM usage").fetchone()[0]
            last = conn.execute("SELECT MAX(created_ms) FROM usage").fetchone()[0]
            for start, end in ((first, last + 1), (first - 10, last + 10), (first - 3 * HOUR_MS, last + HOUR_MS)):
                found = window(conn, project["id"], start, end, None, None)
                assert sum(row["cost_micro"] for row in found) == everything, (start, end)
                assert sum(row["requests"] for row in found) == 4
