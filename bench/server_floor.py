#!/usr/bin/env python3
"""The floor under the gateway: CPU per request of an app that does nothing, on each ASGI server.

A fixed chat-completion answer to every POST, served (a) as a bare ASGI callable and (b) as a one-route
Litestar app, by uvicorn (httptools + uvloop, what `gatewayctl serve` runs) and by granian (Rust) when
it is importable (`pip install granian`; not a dependency). What the gateway spends above these rows is
its own work; what these rows cost no change inside the gateway can remove. Prints figures; asserts
nothing. Traffic stays on 127.0.0.1; the servers are this script's children, stopped by PID.

    PATH=.venv/bin:$PATH bench/server_floor.py [--rate 200] [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import loadgen
from cpu_per_request import cpu_seconds

ANSWER = (
    b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":12,"completion_tokens":8,"total_tokens":20}}'
)

APP_SOURCE = """
import orjson
from litestar import Litestar, Request, post
from litestar.response import Response

ANSWER = {answer!r}


async def bare(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({{"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}})
    await send({{"type": "http.response.body", "body": ANSWER}})


@post("/v1/chat/completions")
async def chat(request: Request) -> Response:
    orjson.loads(await request.body())
    return Response(ANSWER, media_type="application/json")


litestar = Litestar([chat])
"""


def command(server: str, app: str, port: int) -> list[str]:
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", f"floor_app:{app}", "--port", str(port), "--log-level", "warning",
                "--no-access-log", "--loop", "uvloop", "--http", "httptools"]  # fmt: skip
    return [sys.executable, "-m", "granian", "--interface", "asgi", "--port", str(port), "--workers", "1",
            "--log-level", "warning", "--no-ws", "--loop", "uvloop", f"floor_app:{app}"]  # fmt: skip


def tree_cpu(pids: list[int]) -> float:
    return sum(sum(cpu_seconds(pid)) for pid in pids)


async def one_round(url: str, pids: list[int], rate: int, seconds: float) -> float:
    """CPU ms per request of the server's processes (granian serves from a child process)."""
    body = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
    before = tree_cpu(pids)
    result = await loadgen.open_loop(url, body, {}, rate, seconds)
    spent = tree_cpu(pids) - before
    done = result.get("ok") or result.get("count") or int(rate * seconds)
    return spent / max(1, int(done)) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    loadgen.install_uvloop()
    servers = ["uvicorn"] + (["granian"] if importlib.util.find_spec("granian") else [])
    tmp = Path(tempfile.mkdtemp(prefix="gateway-floor-"))
    (tmp / "floor_app.py").write_text(APP_SOURCE.format(answer=ANSWER))
    env = {**harness.child_env(), "PYTHONPATH": str(tmp) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for server in servers:
        for app in ("bare", "litestar"):
            children = harness.Children()
            try:
                port = harness.free_port()
                proc = children.start(server, command(server, app, port), tmp / f"{server}-{app}.log", env, tmp)
                harness.wait_for_port(port, proc, 20)
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
                pids = [proc.pid, *harness.descendants(proc.pid)]
                asyncio.run(one_round(url, pids, opts.rate, 2))  # warm-up
                figures = [asyncio.run(one_round(url, pids, opts.rate, opts.seconds)) for _ in range(opts.rounds)]
                shown = "  ".join(f"{f:.3f}" for f in figures)
                print(f"{server:8} {app:8} CPU ms/request: median {statistics.median(figures):.3f}  (rounds: {shown})")
            finally:
                children.stop_all()
    print(f"rate {opts.rate} req/s, {opts.seconds:g} s per round; machine: {harness.machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
