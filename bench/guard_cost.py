#!/usr/bin/env python3
"""Per-request cost of the connection guard: uvicorn's HttpToolsProtocol vs server/http_guard's subclass.

Both protocols run on the same uvloop loop, with a stand-in transport and a trivial ASGI app, so the
figure is the HTTP layer alone (parse, request cycle, response) and the difference is what the
guard adds. Rounds alternate between the two to spread machine noise evenly; the median of the
rounds is printed. Shapes: a keep-alive GET, a keep-alive POST with a 1 KiB JSON body (both in
one read, as clients send them), and a new connection per request (where the header timer and the
connection table are used).

    .venv/bin/python bench/guard_cost.py [--requests 20000] [--rounds 7]
    .venv/bin/python bench/guard_cost.py --callgrind     # instructions per request (needs valgrind)

Timings on a shared machine are noisy; `--callgrind` counts instructions instead (valgrind's
callgrind, run twice per case with different request counts so start-up cancels out), which the
load of other processes does not change.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvloop
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from server.http_guard.protocol import EdgeLimits, guarded_protocol

LIMITS = EdgeLimits(
    header_timeout_s=10, body_timeout_s=30, body_min_bytes_per_s=8192, max_header_bytes=32768, max_connections=2048,
    reserved_connections=64,
)  # fmt: skip
BODY = b'{"model":"bench-model","messages":[{"role":"user","content":"' + b"x" * 960 + b'"}]}'
SHAPES = {
    "keep-alive GET": b"GET /v1/models HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer gw_live_x\r\n\r\n",
    "keep-alive POST 1 KiB": b"POST /v1/chat/completions HTTP/1.1\r\nHost: b\r\ncontent-type: application/json\r\n"
    b"authorization: Bearer gw_live_x\r\ncontent-length: %d\r\n\r\n%s" % (len(BODY), BODY),
}


class Transport:
    def __init__(self) -> None:
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def write(self, data: bytes) -> None: ...

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["method"] == "POST":
        await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


async def per_request_us(cls: type[HttpToolsProtocol], request: bytes, n: int, new_connections: bool) -> float:
    config = Config(app=app, lifespan="off", proxy_headers=False, access_log=False, log_level="warning")
    config.load()
    state = ServerState()
    protocol = None
    started = time.perf_counter()
    for i in range(n):
        if protocol is None or new_connections:
            if protocol is not None:
                protocol.connection_lost(None)
            protocol = cls(config=config, server_state=state, app_state={})
            protocol.connection_made(Transport())  # type: ignore[arg-type]
        protocol.data_received(request)
        while state.tasks:  # let the request's task answer
            await asyncio.sleep(0)
        if i == 0 and not new_connections:
            started = time.perf_counter()  # exclude the first request's setup
    return (time.perf_counter() - started) / n * 1e6


CASES = {
    "keep-alive GET": (SHAPES["keep-alive GET"], False),
    "keep-alive POST 1 KiB": (SHAPES["keep-alive POST 1 KiB"], False),
    "new connection per GET": (SHAPES["keep-alive GET"], True),
}


def protocol_class(name: str) -> type[HttpToolsProtocol]:
    return HttpToolsProtocol if name == "uvicorn" else guarded_protocol(LIMITS)


def timed(rounds: int, requests: int) -> None:
    print(f"{rounds} rounds x {requests} requests, uvloop {uvloop.__version__}; µs per request, median (min)")
    print(f"{'case':<26}{'uvicorn':>16}{'guarded':>16}{'added':>16}")
    classes = [protocol_class("uvicorn"), protocol_class("guarded")]
    for name, (request, fresh) in CASES.items():
        runs: list[list[float]] = [[], []]
        for _ in range(rounds):
            for i, cls in enumerate(classes):
                runs[i].append(uvloop.run(per_request_us(cls, request, requests, fresh)))
        (a, b), (ma, mb) = [statistics.median(r) for r in runs], [min(r) for r in runs]
        print(f"{name:<26}{a:>9.2f} ({ma:.2f}){b:>9.2f} ({mb:.2f}){b - a:>+9.2f} ({mb - ma:+.2f})")


def instructions(cls_name: str, case: str, requests: int) -> int:
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__]
    command += ["--single", cls_name, case, str(requests)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if not found:
        raise SystemExit(f"no callgrind total in: {done.stderr[-500:]}")
    return int(found.group(1))


def counted(requests: int) -> None:
    small = 200
    print(f"callgrind: instructions per request, from runs of {small} and {small + requests} requests")
    print(f"{'case':<26}{'uvicorn':>10}{'guarded':>10}{'added':>10}")
    for case in CASES:
        per = []
        for cls_name in ("uvicorn", "guarded"):
            total = instructions(cls_name, case, small + requests) - instructions(cls_name, case, small)
            per.append(total / requests)
        print(f"{case:<26}{per[0]:>10.0f}{per[1]:>10.0f}{per[1] - per[0]:>+10.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--callgrind", action="store_true", help="count instructions with valgrind instead")
    parser.add_argument("--single", nargs=3, metavar=("CLASS", "CASE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        cls_name, case, n = args.single
        request, fresh = CASES[case]
        uvloop.run(per_request_us(protocol_class(cls_name), request, int(n), fresh))
    elif args.callgrind:
        counted(args.requests or 2000)
    else:
        timed(args.rounds, args.requests or 20000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
