#!/usr/bin/env python3
"""What storing a request's bodies costs, per request, in CPU: packing them on the event loop (cut,
scrub, compress) and writing them in batches on the bodies writer (insert + commit into bodies.db, as
BodyLog does every 50 ms). End-to-end figures on a shared machine cannot resolve tens of microseconds;
these can. Prints figures; asserts nothing.

    .venv/bin/python bench/body_log_cost.py [--requests 20000] [--batch 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.request_log import pack
from server.store.protocol import BodyRecord
from server.store.sqlite import bodies
from server.store.sqlite.db import connect

REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Summarise the meeting notes. " * 8}]}
ANSWER = {
    "id": "chatcmpl-abc",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "The team agreed on it. " * 12}}],
    "usage": {"prompt_tokens": 60, "completion_tokens": 70, "total_tokens": 130, "cost": 0.00005},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=10, help="bodies per write (≈ req/s x 0.05 s)")
    opts = parser.parse_args()
    request, answer = orjson.dumps(REQUEST), orjson.dumps(ANSWER)
    began = time.process_time()
    records = []
    for n in range(opts.requests):
        request_blob, request_cut = pack(request, 262_144)
        answer_blob, answer_cut = pack(answer, 262_144)
        records.append(BodyRecord(f"req-{n:08d}", n, request_blob, answer_blob, request_cut, answer_cut))
    packing = (time.process_time() - began) / opts.requests * 1e6
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / bodies.FILE_NAME
        bodies.prepare(path, 5000)
        conn = connect(path, bodies.SYNCHRONOUS)
        began = time.process_time()
        for start in range(0, len(records), opts.batch):
            conn.execute("BEGIN IMMEDIATE")
            bodies.insert(records[start : start + opts.batch], 0)(conn)
            conn.execute("COMMIT")
        writing = (time.process_time() - began) / opts.requests * 1e6
        conn.close()
    size = (len(request) + len(answer), records[0].size)
    print(f"bodies of {size[0]} bytes, stored as {size[1]} bytes (compressed)")
    print(f"pack on the event loop      {packing:6.1f} µs CPU per request")
    print(f"write in batches of {opts.batch:<4d}    {writing:6.1f} µs CPU per request (bodies writer thread)")
    print(f"total                       {packing + writing:6.1f} µs CPU per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
