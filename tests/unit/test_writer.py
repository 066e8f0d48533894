"""The group-commit writer: concurrent submits commit in groups; a failing op fails alone."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from server.store.sqlite.db import Writer


def test_concurrent_writes_are_grouped_and_durable(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    sqlite3.connect(path).execute("CREATE TABLE t (id INTEGER PRIMARY KEY)").connection.close()

    async def main() -> int:
        writer = Writer(path)
        writer.start()

        def insert(n: int):
            return lambda conn: conn.execute("INSERT INTO t (id) VALUES (?)", (n,))

        await asyncio.gather(*(writer.run(insert(n)) for n in range(500)))
        commits = writer.commits
        await writer.stop()
        return commits

    commits = asyncio.run(main())
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM t").fetchone()[0] == 500
    assert commits < 500  # grouped: fewer commits than writes


def test_a_failing_op_fails_alone(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    sqlite3.connect(path).execute("CREATE TABLE t (id INTEGER PRIMARY KEY)").connection.close()

    async def main() -> list[object]:
        writer = Writer(path)
        writer.start()
        ops = [
            lambda c: c.execute("INSERT INTO t (id) VALUES (1)"),
            lambda c: c.execute("INSERT INTO t (id) VALUES (1)"),  # duplicate source id
            lambda c: c.execute("INSERT INTO t (id) VALUES (2)"),
        ]
        results = await asyncio.gather(*(writer.run(op) for op in ops), return_exceptions=True)
        await writer.stop()
        return list(results)

    results = asyncio.run(main())
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert not isinstance(results[0], Exception) and not isinstance(results[2], Exception)
    rows = sqlite3.connect(path).execute("SELECT id FROM t ORDER BY id").fetchall()
    assert rows == [(1,), (2,)]


def test_submit_after_stop_fails_closed(tmp_path: Path) -> None:
    async def main() -> None:
        writer = Writer(tmp_path / "w.db")
        writer.start()
        await writer.stop()
        with pytest.raises(RuntimeError):
            await writer.run(lambda c: None)

    asyncio.run(main())


def test_the_wal_stays_bounded_while_a_reader_keeps_reading(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    sqlite3.connect(path).execute("CREATE TABLE t (id INTEGER PRIMARY KEY, pad TEXT)").connection.close()
    limit = 1 << 20

    async def main() -> int:
        writer = Writer(path, synchronous="NORMAL", wal_limit_bytes=limit)
        writer.checkpoint_interval_s = 0.05
        writer.start()
        reader = sqlite3.connect(path)
        largest = 0
        for batch in range(60):  # 60 groups of 50 rows of 1 KiB: ~3 MiB written in all
            rows = [(batch * 50 + n, "x" * 1024) for n in range(50)]
            await asyncio.gather(
                *(writer.run(lambda c, r=r: c.execute("INSERT INTO t VALUES (?, ?)", r)) for r in rows)
            )
            reader.execute("SELECT COUNT(*) FROM t").fetchone()  # a reader between groups, as the admin API does
            largest = max(largest, (tmp_path / "w.db-wal").stat().st_size)
        reader.close()
        await writer.stop()
        return largest

    largest = asyncio.run(main())
    assert largest <= limit * 5 // 4, largest  # the limit plus what one group wrote before its checkpoint
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM t").fetchone()[0] == 3000


def test_each_group_commit_is_timed_and_a_failing_observer_never_fails_the_commit(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    sqlite3.connect(path).execute("CREATE TABLE t (id INTEGER PRIMARY KEY)").connection.close()
    timed: list[float] = []
    entered, gate = threading.Event(), threading.Event()

    def observe(seconds: float) -> None:
        timed.append(seconds)
        raise RuntimeError("a broken metrics observer")

    async def main() -> tuple[int, int]:
        writer = Writer(path)
        writer.on_commit = observe
        writer.start()
        blocked = writer.submit(lambda conn: entered.set() or gate.wait(5))
        await asyncio.to_thread(entered.wait, 5)  # the writer is inside the first group now
        insert = "INSERT INTO t (id) VALUES (?)"
        inserts = [writer.submit(lambda conn, n=n: conn.execute(insert, (n,))) for n in range(3)]
        depth = writer.queued
        gate.set()
        await asyncio.gather(blocked, *inserts)
        commits = writer.commits
        await writer.stop()
        return depth, commits

    depth, commits = asyncio.run(main())
    assert depth == 3
    assert len(timed) == commits >= 2 and all(seconds > 0 for seconds in timed)
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM t").fetchone()[0] == 3
