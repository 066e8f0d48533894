"""The same operations through the Store protocol on SQLite and on a real PostgreSQL server give the same
answers: requests, usage, ledger (verified), wallet credits, idempotency answers, rollups, request bodies,
webhook endpoints and their deliveries, files (their bytes included: on disk, or in PostgreSQL), invoices
data."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from server.files.service import Meta
from server.gateway import Gateway
from server.operations import create_key, create_project, credit_wallet
from server.store.media_protocol import Job, Page, StoredFile
from server.store.protocol import HOLD_JOB, BodyRecord, Closing, Event, HoldRecord, IdempotencyRecord, Intent
from server.store.webhook_protocol import ENABLED, WebhookEndpoint
from server.types import Call, Caller, Charge, Outcome, Usage
from tests.scale.engines import engine_settings
from tests.support.services import Postgres

T0 = 1_792_000_000_000  # 2026-10-15 in UTC
BLOB = bytes(range(256)) * 9_000  # 2.2 MiB: three chunks in PostgreSQL, nine on disk
RANGES = ((0, None), (5, 10), ((1 << 20) - 3, (1 << 20) + 3), (len(BLOB) - 1, None), (len(BLOB) + 5, None))
CARD = {"input": 1_000_000, "output": 2_000_000, "cached_input": 1_000_000}


def _closing(caller: Caller, i: int, stream: bool = False) -> tuple[Intent, Closing]:
    call = Call(request_id=f"req-{i:04d}", endpoint="chat", model="m", body={}, started_ms=T0 + i, stream=stream)
    hold = HoldRecord(call.request_id, caller.project_id, caller.key_id, 5000, False, CARD)
    usage = Usage(input_tokens=100 + i, output_tokens=50, image_1024=i % 2)
    outcome = Outcome(
        status="ok", http_status=200, usage=usage, charge=Charge(micro=200 + i, card=CARD), ended_ms=T0 + i + 7
    )
    event = Event(f"evt-{i}", "request.completed", caller.project_id, {"i": i}, T0 + i)
    answer = IdempotencyRecord(
        caller.project_id, f"idem-{i}", "sha", call.request_id, 200, {"a": "b"}, False, b"{}", T0, T0 + 10**12
    )
    return Intent(caller, call, hold), Closing(caller, call, outcome, hold.id, "settled", (event,), idempotency=answer)


async def _scenario(gw: Gateway) -> dict[str, Any]:
    project = await create_project(gw, "acme")
    key, _ = await create_key(gw, "acme")
    caller = Caller(project.id, key.id, "127.0.0.1")
    await credit_wallet(gw, "acme", 1_000_000, "welcome", "adj-1")
    replayed = await credit_wallet(gw, "acme", 1_000_000, "welcome", "adj-1")
    endpoint = WebhookEndpoint(
        "we_1", project.id, "https://hooks.example/x", ("request.completed",), None, "whsec_x", ENABLED, T0
    )
    await gw.store.webhooks.create_endpoint(endpoint)
    for i in range(30):
        intent, closing = _closing(caller, i, stream=i % 3 == 0)
        gw.store.record_intent(intent)
        await gw.store.record_closing(closing)
    gw.store.checkpoint("req-0000", 10, T0)  # ignored: the request is closed
    intent, _ = _closing(caller, 99, stream=True)
    await gw.store.record_intent(intent)
    for n in range(3):  # files and a video job with its hold
        stored = StoredFile(
            f"file-{n}", project.id, "user_data", f"f{n}.txt", 10 + n, "text/plain", "sha", "upload", T0
        )
        await gw.store.media.add_file(stored)
    deleted = await gw.store.media.delete_file(project.id, "file-1", T0 + 1)
    job = Job("job-1", "video", project.id, key.id, "req-job-1", "m", {"prompt": "x"}, T0, T0 + 10**9)
    await gw.store.media.create_job(job, HoldRecord("req-job-1", project.id, key.id, 70, True, CARD, kind=HOLD_JOB))
    session = Call(request_id="rt-1", endpoint="realtime", model="m", body={}, started_ms=T0, session_id="rt-1")
    await gw.store.record_intent(Intent(caller, session, None))
    for n in range(2):  # a realtime session's responses, each a request with its own usage and debit
        response = Call(request_id=f"rt-1-{n}", endpoint="realtime", model="m", body={}, started_ms=T0 + n)
        response.session_id = "rt-1"
        hold = HoldRecord(response.request_id, project.id, key.id, 100, False, CARD)
        gw.store.record_intent(Intent(caller, response, hold))
        outcome = Outcome(
            status="ok", http_status=200, usage=Usage(input_tokens=3), charge=Charge(3, CARD), ended_ms=T0
        )
        await gw.store.record_closing(Closing(caller, response, outcome, hold.id, "settled"))
    freed = await gw.store.record_bodies([BodyRecord("req-0001", T0, b"req", b"resp")], 0)
    await gw.store.flush()
    entries = await gw.store.ledger_entries(project.id)
    strip = ("id", "hash", "prev_hash", "project_id")
    found = {
        "replayed": replayed["replayed"],
        "verify": [(r["ok"], r["entries"], r["balance_micro"]) for r in await gw.store.verify_ledger()],
        "entries": [{k: v for k, v in e.items() if k not in strip and e["kind"] == "usage"} for e in entries],
        "history": len(await gw.store.ledger_history(project.id, 5)),
        "totals": await gw.store.usage_totals(T0, "model"),
        "by_day": await gw.store.usage_totals(T0, "day", project.id),
        "requests": [
            (r["id"], r["status"], r["cost_micro"], r["quantities"], r["has_bodies"], r["stream"])
            for r in await gw.store.list_requests({"project_id": project.id}, 100)
        ],
        "matching": [r["id"] for r in await gw.store.requests_matching("req-0003")],
        "bodies": (freed, await gw.store.read_bodies("req-0001")),
        "idempotent": await gw.store.idempotent_answer(project.id, "idem-3", T0 + 5),
        "window": await gw.store.usage_window(
            project.id, T0 - 1, T0 + 100_000, None, None, ["model"], [("2026-10-15", T0 - 1, T0 + 100_000)]
        ),
        "invoice": await gw.store.invoice_data(project.id, T0 - 1, T0 + 100_000),
        "with_entries": len(await gw.store.projects_with_entries(T0 - 1, T0 + 10**12)),
        "deliveries": len(await gw.store.webhooks.deliveries(project_id=project.id, endpoint_id="we_1", limit=100)),
        "backlog": {k: v for k, v in (await gw.store.backlog()).items() if "ms" not in k},
        "storage_used": await gw.store.media.storage_used(),
        "files": [f.id for f in await gw.store.media.list_files(project.id, Page(limit=10))],
        "deleted": deleted is not None and deleted.id,
        "jobs": [j.id for j in await gw.store.media.active_jobs()],
        "session": [(r["id"], r["cost_micro"]) for r in await gw.store.session_responses("rt-1")],
    }
    found["blobs"] = await _blobs(gw, project.id)  # after the listings: its files are not theirs
    text = json.dumps(found, default=repr, sort_keys=True)  # ids are random: named by their role
    return dict(json.loads(text.replace(project.id, "PROJECT").replace(key.id, "KEY")))


async def _blobs(gw: Gateway, project_id: str) -> dict[str, Any]:
    """Bytes kept through the blob seam read back whole and in ranges; an empty file; a deleted one is gone."""
    meta = Meta("b.bin", "application/octet-stream", "user_data", "upload", "req-blob")
    kept = await gw.files.add_bytes(project_id, BLOB, meta)
    empty = await gw.files.add_bytes(project_id, b"", meta)
    ranges = [b"".join([p async for p in gw.files.blobs.chunks(project_id, kept.id, s, e)]) for s, e in RANGES]
    await gw.files.delete(project_id, kept.id)
    try:
        await gw.files.blobs.read(project_id, kept.id)
        gone = False
    except FileNotFoundError:
        gone = True
    return {
        "ranges": [piece == BLOB[s:e] for piece, (s, e) in zip(ranges, RANGES, strict=True)],
        "empty": await gw.files.blobs.read(project_id, empty.id),
        "sha256": kept.sha256,
        "gone": gone,
    }


def _run(settings: Any) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        gw = await Gateway.start(settings)
        try:
            return await _scenario(gw)
        finally:
            await gw.close()

    return asyncio.run(go())


def test_the_same_operations_give_the_same_answers_on_sqlite_and_postgres(tmp_path: Path, postgres: Postgres) -> None:
    (tmp_path / "lite").mkdir()
    (tmp_path / "pg").mkdir()
    lite = _run(engine_settings("sqlite", tmp_path / "lite", None))
    pg = _run(engine_settings("postgres", tmp_path / "pg", postgres))
    assert lite["verify"] == [[True, 33, 1_000_000 - sum(200 + i for i in range(30)) - 6]]
    assert lite["replayed"] is True and lite["deliveries"] == 30 and len(lite["requests"]) == 34
    assert lite["files"] == ["file-2", "file-0"] and lite["jobs"] == ["job-1"] and len(lite["session"]) == 2
    assert lite["bodies"][1] is not None and lite["idempotent"] is not None and lite["window"]
    assert lite["blobs"]["ranges"] == [True] * len(RANGES) and lite["blobs"]["gone"] is True
    for name in lite:
        assert pg[name] == lite[name], name
