"""The request log's bodies: stored scrubbed and compressed, a stream as its assembled answer, bounded by a
disk budget and a retention, per `[logging] bodies`."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from pathlib import Path

from server.request_log import unpack
from tests.inproc.harness import BASE_CONFIG, auth, running, upstream_behavior


def _bodies(database: Path) -> dict[str, tuple[object, object]]:
    with sqlite3.connect(database.with_name("bodies.db")) as conn:
        found = conn.execute(
            "SELECT request_id, request, response, request_truncated, response_truncated FROM request_bodies"
        ).fetchall()
    return {rid: (unpack(req, bool(rt)), unpack(resp, bool(st))) for rid, req, resp, rt, st in found}


async def test_bodies_are_stored_scrubbed_and_streams_as_their_assembled_answer(tmp_path: Path) -> None:
    async with running(tmp_path, BASE_CONFIG) as gw:
        await gw.project("p")
        key = await gw.key("p")
        leaked = f"please keep {key} and sk-proj-abcdefghijklmnopqrstuvwxyz safe"
        plain = await gw.chat(key, model="gpt-4o-mini", messages=[{"role": "user", "content": leaked}])
        assert plain.status_code == 200
        upstream_behavior(reply_words=6)
        streamed = await gw.chat(key, model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "s"}])
        assert streamed.status_code == 200
        await gw.quiesce()
        await asyncio.sleep(0.05)
        await gw.quiesce()
        stored = _bodies(gw.database)
        assert len(stored) == 2
        files = [gw.database, gw.database.with_name("bodies.db")]
        raw = b"".join(path.read_bytes() for f in files for path in (f, Path(f"{f}-wal")) if path.exists())
        assert key.encode() not in raw and b"sk-proj-abcdefghijklmnop" not in raw
        requests = [request for request, _ in stored.values()]
        assert any("[redacted]" in str(request) for request in requests)
        answers = [answer for _, answer in stored.values()]
        assembled = next(
            a
            for a in answers
            if isinstance(a, dict)
            and a.get("object") == "chat.completion"
            and "usage" in a
            and a["choices"]
            and a["choices"][0]["message"]["content"] == "w0 w1 w2 w3 w4 w5"
        )
        assert assembled["choices"][0]["finish_reason"] == "stop"


async def test_the_disk_budget_drops_the_oldest_and_errors_mode_keeps_only_errors(tmp_path: Path) -> None:
    config = BASE_CONFIG + "\n[logging]\nmax_disk_mb = 1\nmax_body_bytes = 65536\n"
    async with running(tmp_path, config) as gw:
        await gw.project("p")
        key = await gw.key("p")
        for n in range(200):  # ~24 KB each once compressed (random hex): 4.8 MB in all, past the budget
            body = {"model": "mock-chat", "messages": [{"role": "user", "content": f"{n} {secrets.token_hex(24_000)}"}]}
            assert (await gw.client.post("/v1/chat/completions", json=body, headers=auth(key))).status_code == 200
        await gw.quiesce()
        bodies = gw.database.with_name("bodies.db")
        with sqlite3.connect(bodies) as conn:
            kept, size, oldest = conn.execute(
                "SELECT COUNT(*), SUM(bytes), MIN(created_ms) FROM request_bodies"
            ).fetchone()
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with sqlite3.connect(gw.database) as conn:
            first = conn.execute("SELECT MIN(ended_ms) FROM requests").fetchone()[0]
            assert "request_bodies" not in {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert 0 < kept < 60 and size <= 1 << 20  # bounded, the newest kept
        assert bodies.stat().st_size < 5 << 19  # the file too: freed pages are reused, not appended
        assert oldest > first
        assert gw.gateway.path.bodies.stored_bytes == size
    errors_only = BASE_CONFIG + '\n[logging]\nbodies = "errors"\n'
    async with running(tmp_path / "errors", errors_only) if (tmp_path / "errors").mkdir() is None else None as gw:
        await gw.project("p")
        key = await gw.key("p")
        assert (await gw.chat(key, model="mock-chat")).status_code == 200
        upstream_behavior(status=400, times=1)
        assert (await gw.chat(key, model="gpt-4o-mini")).status_code == 400
        await gw.quiesce()
        stored = _bodies(gw.database)
        assert len(stored) == 1 and "error" in next(iter(stored.values()))[1]  # type: ignore[operator]
