"""Reservations and events outlive the process: holds are written with the intent and resolved exactly once;
at restart an interrupted request's hold is released and a long job's is kept; a threshold event is in the
transaction of the usage that crossed it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from server.clock import now_ms
from server.store.protocol import HoldRecord
from server.store.sqlite.records import insert_hold
from tests.inproc.harness import BASE_CONFIG, running, upstream_behavior


def _db(path: Path, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, args).fetchall()


async def test_restart_releases_an_interrupted_requests_hold_and_keeps_a_jobs(tmp_path: Path) -> None:
    async with running(tmp_path) as gw:
        project = await gw.project("p", monthly_budget="10")
        key = await gw.key("p")
        upstream_behavior(delay_ms=5_000)  # the request is still in flight when the process goes away
        in_flight = asyncio.create_task(gw.chat(key, model="gpt-4o-mini"))
        for _ in range(100):
            await asyncio.sleep(0.02)
            if _db(gw.database, "SELECT COUNT(*) FROM holds WHERE status = 'open'")[0][0]:
                break
        job = HoldRecord("job_1", project["id"], "key_job", 2_500_000, False, {"input": 0}, kind="job")
        await gw.gateway.store.writer.run(lambda conn: insert_hold(conn, job, now_ms()))
        store = gw.gateway.store
        await store.writer.stop()  # the process dies: nothing more is written
        in_flight.cancel()
    assert _db(gw.database, "SELECT kind, status FROM holds ORDER BY kind") == [("job", "open"), ("request", "open")]
    async with running(tmp_path, fresh=False) as again:
        assert _db(again.database, "SELECT status FROM requests") == [("interrupted",)]
        assert _db(again.database, "SELECT kind, status FROM holds ORDER BY kind") == [
            ("job", "open"),
            ("request", "released"),
        ]
        budgets = again.gateway.budgets
        assert budgets.open_holds == 1 and budgets.reserved_project == {project["id"]: 2_500_000}
        assert (await again.admin.get("/readyz")).json()["open_reservations"] == 1


async def test_a_threshold_event_is_committed_with_the_usage_that_crossed_it(tmp_path: Path) -> None:
    async with running(tmp_path, BASE_CONFIG) as gw:
        project = await gw.project("p", monthly_budget="0.001")  # 1,000 micro
        key = await gw.key("p")
        for _ in range(60):
            answer = await gw.chat(
                key, model="mock-chat", max_tokens=1, messages=[{"role": "user", "content": "x" * 400}]
            )
            assert answer.status_code == 200
            # the answer is returned once its closing committed, and nothing else was queued since: if this
            # request's usage crossed half the budget, its event is already in the database with it
            spent = _db(gw.database, "SELECT SUM(cost_micro) FROM usage WHERE project_id = ?", (project["id"],))[0][0]
            events = _db(gw.database, "SELECT id FROM outbox WHERE event_type = 'usage.threshold_reached'")
            if spent >= 500:
                assert events, spent
                return
            assert not events
        raise AssertionError("the budget's half was never crossed")


async def test_a_call_without_a_model_goes_through_the_same_admission_limits_and_metering(tmp_path: Path) -> None:
    from server.metering import Declared
    from server.types import Call, Unit, Usage

    class FilesDialect:  # the shape of a front door with no model (file uploads)
        name, capability = "files", "files"

        def declare(self, body: dict[str, object]) -> Declared:
            return Declared(output_cap=0)

    async with running(tmp_path) as gw:
        project = await gw.project("p")
        key = await gw.key("p", endpoints=["chat"])
        path = gw.gateway.path
        caller = path.admit(key, "127.0.0.1")
        call = Call(request_id="req-file-1", endpoint="files", model="", body={}, started_ms=now_ms())
        try:
            path.start(caller, call, FilesDialect())  # type: ignore[arg-type]
        except Exception as exc:  # the key's scope leaves out the files class
            assert getattr(exc, "code", None) == "endpoint_not_allowed"
        else:
            raise AssertionError("a key scoped to chat uploaded a file")
        files_key = await gw.key("p", endpoints=["files"])
        ticket = path.start(path.admit(files_key, "127.0.0.1"), call, FilesDialect())  # type: ignore[arg-type]
        charge = await path.complete(ticket, Usage({Unit.STORED_BYTES: 1234}))
        assert charge.micro == 0
        assert _db(gw.database, "SELECT endpoint, status FROM requests") == [("files", "ok")]
        assert _db(gw.database, "SELECT quantities FROM usage WHERE project_id = ?", (project["id"],)) == [
            ('{"stored_bytes":1234}',)
        ]
