"""Streaming clients that leave or stop reading: the upstream call is cancelled at once and billed for what
was delivered, and a tenant with stalled streams cannot take the provider's whole connection pool."""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.gateway import MOCK_CONFIG, GatewayProcess
from tests.upstreams.openai_upstream import UpstreamProcess, start_upstream_process

POOL = 4  # connections to the provider; one project may hold three of them


def _config(upstream: UpstreamProcess) -> str:
    return (
        MOCK_CONFIG
        + f"""
[[providers]]
name = "up"
kind = "openai"
base_url = "{upstream.base_url}"
api_key_env = "STREAM_UPSTREAM_KEY"
max_connections = {POOL}
timeouts = {{ connect = 2, first_byte = 10, total = 60 }}

[[models]]
name = "gpt-4o-mini"
targets = ["up:gpt-4o-mini"]
price = {{ input = 1.0, output = 2.0 }}
"""
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, UpstreamProcess]]:
    upstream = start_upstream_process()
    gateway = GatewayProcess(
        tmp_path_factory.mktemp("stream-clients"),
        _config(upstream),
        {"STREAM_UPSTREAM_KEY": "sk-stream-standin"},
        server_extra="stream_write_timeout_s = 3\n",
    )
    try:
        yield gateway.start(), upstream
    finally:
        gateway.stop()
        upstream.stop()


def _body(text: str, max_tokens: int = 4096) -> dict[str, Any]:
    messages = [{"role": "user", "content": text}]
    return {"model": "gpt-4o-mini", "stream": True, "messages": messages, "max_tokens": max_tokens}


def _wait_for(check: Any, within_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        if check():
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"not within {within_s}s")


def _request_row(gateway: GatewayProcess, client_id: str) -> dict[str, Any]:
    return dict(gateway.admin(f"/requests/{client_id}"))


@pytest.mark.parametrize("chunk_delay_ms", [50, 0])
def test_a_client_that_leaves_cancels_the_upstream_within_a_second_and_pays_what_it_got(
    setup: tuple[GatewayProcess, UpstreamProcess], chunk_delay_ms: int
) -> None:
    gateway, upstream = setup
    upstream.clear()
    upstream.set_behavior(reply_words=4000, chunk_delay_ms=chunk_delay_ms)
    key = gateway.new_key("leaver")
    client_id = f"00000000-0000-4000-8000-{chunk_delay_ms:012d}"
    headers = {"authorization": f"Bearer {key}", "x-request-id": client_id}
    with (
        httpx.Client(timeout=10) as http,
        http.stream("POST", f"{gateway.url}/v1/chat/completions", json=_body("leave"), headers=headers) as answer,
    ):
        for line in answer.iter_lines():
            if '"content":"w' in line:
                break  # some content arrived: the client leaves mid-stream
    left = time.monotonic()
    if chunk_delay_ms:  # a slow upstream is told at once (the stand-in notices between chunks)
        _wait_for(lambda: upstream.streams()["abandoned"] == 1, 1.0)
        assert time.monotonic() - left < 1.0
    _wait_for(lambda: _request_row(gateway, client_id)["status"] != "pending", 2.0)
    row = _request_row(gateway, client_id)
    assert row["status"] == "client_disconnected", row  # never billed as a whole answer the client did not get
    assert row["estimated"] and 0 < row["output_tokens"] < 4000 and row["input_tokens"] > 0


def _stalled_stream(gateway: GatewayProcess, key: str, text: str) -> socket.socket:
    """A raw client that sends a stream request and never reads the answer."""
    sock = socket.create_connection(("127.0.0.1", gateway.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    payload = json.dumps(_body(text, max_tokens=60000)).encode()
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        + f"authorization: Bearer {key}\r\ncontent-length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    return sock


def test_stalled_readers_cannot_take_the_pool_and_are_let_go(setup: tuple[GatewayProcess, UpstreamProcess]) -> None:
    gateway, upstream = setup
    upstream.clear()
    upstream.set_behavior(reply_words=60000, chunk_delay_ms=0)  # megabytes: more than socket buffers hold
    stalled_key, other_key = gateway.new_key("stalled"), gateway.new_key("bystander")
    sockets = [_stalled_stream(gateway, stalled_key, f"stall {n}") for n in range(POOL)]
    try:
        _wait_for(lambda: _quick(upstream), 10.0)  # the stand-in has built its megabytes; the streams block
        started = time.monotonic()
        with httpx.Client(timeout=10) as http:
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "still served?"}]}
            answer = http.post(
                f"{gateway.url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {other_key}"}
            )
        assert answer.status_code == 200 and time.monotonic() - started < 1.0  # another tenant is served
        # the stalled tenant held at most its share; past the write deadline its streams are let go and billed
        _wait_for(lambda: len(_disconnected(gateway, "stalled")) >= POOL - 1, 10.0)
    finally:
        for sock in sockets:
            sock.close()


def _quick(upstream: UpstreamProcess) -> bool:
    started = time.monotonic()
    httpx.get(f"{upstream.root_url}/_health", timeout=10)
    return time.monotonic() - started < 0.05


def _disconnected(gateway: GatewayProcess, project: str) -> list[dict[str, Any]]:
    with sqlite3.connect(gateway.database) as conn:
        found = conn.execute(
            "SELECT r.id, r.status, u.output_tokens FROM requests r JOIN projects p ON p.id = r.project_id"
            " LEFT JOIN usage u ON u.request_id = r.id WHERE p.name = ? AND r.status = 'client_disconnected'",
            (project,),
        ).fetchall()
    return [{"id": i, "status": s, "output_tokens": o} for i, s, o in found]
