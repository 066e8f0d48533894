"""How long a backup takes on a seeded database: the copy (SQLite backup API, one snapshot), the checks
(integrity_check, the keyed ledger verified, sha256) and gzip, as `POST /admin/v1/backup` runs them.

    .venv/bin/python bench/backup_time.py [--requests 200000]

Seeds a fresh database (in a temporary folder) with one project and N requests, each with its usage
row and its ledger debit (a real keyed chain), then times each step and prints sizes.
"""

from __future__ import annotations

import argparse
import platform
import secrets
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.billing.ledger import LedgerChain
from server.store.sqlite import backup, ledger
from server.store.sqlite.db import connect
from server.store.sqlite.store import prepare


def seed(database: Path, chain: LedgerChain, count: int) -> None:
    prepare(database, chain)
    conn = connect(database, "NORMAL")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO projects (id, name, billing, created_ms) VALUES ('prj_b', 'bench', 'postpaid', 0)")
    for i in range(count):
        rid = f"req_{i:08d}_{secrets.token_hex(4)}"
        conn.execute(
            "INSERT INTO requests (id, project_id, key_id, endpoint, model, stream, status, http_status, attempts,"
            " started_ms, ended_ms, body_bytes) VALUES (?, 'prj_b', 'key_b', 'chat', 'mock-chat', 0, 'ok', 200,"
            ' \'[{"target": "mock:mock-chat", "status": 200, "latency_ms": 0.4}]\', ?, ?, 180)',
            (rid, 1_700_000_000_000 + i, 1_700_000_000_010 + i),
        )
        conn.execute(
            "INSERT INTO usage (request_id, project_id, key_id, model, provider, input_tokens, output_tokens,"
            " cached_tokens, cost_micro, price_card, estimated, created_ms) VALUES (?, 'prj_b', 'key_b',"
            " 'mock-chat', 'mock', 12, 40, 0, 92, '{\"input\": 1000000, \"output\": 2000000}', 0, ?)",
            (rid, 1_700_000_000_010 + i),
        )
        ledger.append(conn, chain, "prj_b", "usage", rid, -92, "", 1_700_000_000_010 + i)
    conn.execute("COMMIT")
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200_000)
    args = parser.parse_args()
    chain = LedgerChain(secrets.token_bytes(32))
    with tempfile.TemporaryDirectory() as scratch:
        database, copy = Path(scratch) / "gateway.db", Path(scratch) / "copy.db"
        started = time.perf_counter()
        seed(database, chain, args.requests)
        print(f"seeded {args.requests:,} requests (usage + ledger) in {time.perf_counter() - started:.1f} s")
        timings = {}
        started = time.perf_counter()
        backup.take(database, copy)
        timings["copy"] = time.perf_counter() - started
        started = time.perf_counter()
        report = backup.check(copy, chain)
        timings["check"] = time.perf_counter() - started
        started = time.perf_counter()
        packed = zlib.compressobj(6, zlib.DEFLATED, 31)
        size = len(packed.compress(copy.read_bytes())) + len(packed.flush())
        timings["gzip"] = time.perf_counter() - started
        assert report["integrity"] == "ok" and report["ledger"]["ok"], report
    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}")
    print(f"database {report['bytes'] / (1 << 20):.1f} MiB, gzip {size / (1 << 20):.1f} MiB")
    for step, seconds in timings.items():
        print(f"{step:>6}: {seconds:.2f} s")
    print(f" total: {sum(timings.values()):.2f} s")


if __name__ == "__main__":
    main()
