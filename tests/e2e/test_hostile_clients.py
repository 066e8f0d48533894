"""Slow and hostile clients do not take the server down (issue 8): a real `gatewayctl serve` process.

One gateway with short deadlines and a small connection cap serves every test here, started with a
low soft open-files limit (256, as some hosts give services) so that fd exhaustion would show.
Each test misbehaves for a few seconds with at most a few hundred raw sockets, and checks that
meanwhile /healthz and a normal authenticated client are served within a second, and that the
misbehaving connections are cut by the deadlines.
"""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.gateway import MOCK_CONFIG, GatewayProcess
from tests.support.slow_clients import Herd, open_files_limit, peak_rss_kib, send_huge_header

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5
BODY_MIN_RATE = 1000
MAX_HEADER_BYTES = 16384
MAX_CONNECTIONS = 160
RESERVED = 20
GENERAL_SHARE = MAX_CONNECTIONS - RESERVED
START_SOFT_NOFILE = 256
SLACK = 1.5  # seconds a deadline may take to be noticed on a loaded machine

SERVER_EXTRA = f"""header_timeout_s = {HEADER_TIMEOUT}
body_timeout_s = {BODY_TIMEOUT}
body_min_bytes_per_s = {BODY_MIN_RATE}
keep_alive_timeout_s = 5
max_header_bytes = {MAX_HEADER_BYTES}
max_connections = {MAX_CONNECTIONS}
reserved_connections = {RESERVED}
"""
CHAT = {"model": "mock-chat", "messages": [{"role": "user", "content": "still there?"}]}


def _low_open_files_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (START_SOFT_NOFILE, hard))


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    directory: Path = tmp_path_factory.mktemp("hostile")
    gateway = GatewayProcess(directory, MOCK_CONFIG, server_extra=SERVER_EXTRA)
    try:
        yield gateway.start(preexec_fn=_low_open_files_limit)
    finally:
        gateway.stop()


@pytest.fixture(scope="module")
def key(gw: GatewayProcess) -> str:
    return gw.new_key("hostile")


def assert_served(gw: GatewayProcess, key: str) -> None:
    """/healthz and a normal authenticated chat call, each on a new connection, answer 200 within 1 s."""
    for method, path, extra in (
        ("GET", "/healthz", {}),
        ("POST", "/v1/chat/completions", {"json": CHAT, "headers": {"authorization": f"Bearer {key}"}}),
    ):
        started = time.monotonic()
        response = httpx.request(method, f"{gw.url}{path}", timeout=1.0, **extra)  # type: ignore[arg-type]
        elapsed = time.monotonic() - started
        assert response.status_code == 200, (path, response.status_code, response.text[:200])
        assert elapsed < 1.0, (path, elapsed)


def keep_serving_until_closed(
    herd: Herd, gw: GatewayProcess, key: str, within: float, trickle: bytes = b"", every: float = 0.2
) -> float:
    """Trickle `trickle` on the herd's connections every `every` s, checking others are served,
    until the server has closed all of them or `within` seconds passed. Returns the seconds it took."""
    started = time.monotonic()
    next_send = next_probe = started
    while herd.still_open and time.monotonic() - started < within:
        now = time.monotonic()
        if trickle and now >= next_send:
            herd.send_each(trickle)
            next_send = now + every
        if now >= next_probe:
            assert_served(gw, key)
            next_probe = now + 0.5
        herd.poll()
        time.sleep(0.02)
    assert not herd.still_open, f"{len(herd.still_open)} connections still open after {within} s"
    return time.monotonic() - started


def test_open_files_limit_is_raised_at_start(gw: GatewayProcess) -> None:
    assert gw.proc is not None
    soft, hard = open_files_limit(gw.proc.pid)
    assert soft == hard, f"soft open-files limit left at {soft} (hard {hard})"


def test_silent_connections_are_closed_and_do_not_starve_others(gw: GatewayProcess, key: str) -> None:
    """More silent sockets than the cap and than the starting fd limit: others are still served,
    and every silent socket is closed by the header deadline (or evicted sooner)."""
    with Herd(gw.port) as herd:
        herd.open(300)
        assert_served(gw, key)
        keep_serving_until_closed(herd, gw, key, within=HEADER_TIMEOUT + SLACK)


def test_slowloris_headers_get_408_at_the_header_deadline(gw: GatewayProcess, key: str) -> None:
    with Herd(gw.port) as herd:
        herd.open(60, first=b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        keep_serving_until_closed(herd, gw, key, within=HEADER_TIMEOUT + SLACK, trickle=b"X")
        assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in herd.answers.values())


def test_body_at_one_byte_per_second_gets_408_at_the_body_deadline(gw: GatewayProcess, key: str) -> None:
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {key}\r\ncontent-length: 1000\r\n\r\n"
    ).encode()
    with Herd(gw.port) as herd:
        herd.open(30, first=head + b"{")
        keep_serving_until_closed(herd, gw, key, within=BODY_TIMEOUT + SLACK, trickle=b" ", every=1.0)
        assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in herd.answers.values())


def test_huge_header_gets_431_and_memory_stays_flat(gw: GatewayProcess, key: str) -> None:
    assert gw.proc is not None
    before = peak_rss_kib(gw.proc.pid)
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = pool.map(lambda _: send_huge_header(gw.port, 8 * 1024 * 1024), range(16))
        assert_served(gw, key)
        statuses = [answer.split(b"\r\n", 1)[0] for answer in answers]
    assert statuses == [b"HTTP/1.1 431 Request Header Fields Too Large"] * 16, statuses
    grown_mib = (peak_rss_kib(gw.proc.pid) - before) / 1024
    assert grown_mib < 32, f"peak RSS grew by {grown_mib:.0f} MiB"
    assert_served(gw, key)


def test_connection_cap_keeps_room_for_health_checks_and_the_admin_api(gw: GatewayProcess, key: str) -> None:
    """Fill the general share with uploads at a fair rate: a new general request gets a quick 503
    with Retry-After, while /healthz and the admin API still answer, even past the hard cap."""
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {key}\r\ncontent-length: 60000\r\n\r\n"
    ).encode()
    admin = {"authorization": f"Bearer {gw.admin_token}"}
    with Herd(gw.port) as holders, Herd(gw.port) as silent:
        holders.open(GENERAL_SHARE, first=head)
        started = time.monotonic()
        checks = 0
        while time.monotonic() - started < BODY_TIMEOUT + 1.0:  # past the body deadline: a fair rate holds on
            holders.send_each(b" " * 200)  # ~4,000 bytes/s each, above body_min_bytes_per_s
            holders.poll()
            busy = httpx.post(f"{gw.url}/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {key}"})
            assert busy.status_code == 503, busy.text[:200]
            assert busy.headers["retry-after"] == "1"
            assert json.loads(busy.text)["error"]["code"] == "server_busy"
            if checks == 1:
                silent.open(2 * RESERVED)  # past the hard cap: the oldest waiting connections are evicted
            for path, headers in (("/healthz", {}), ("/readyz", {}), ("/admin/v1/projects", admin)):
                t0 = time.monotonic()
                response = httpx.get(f"{gw.url}{path}", headers=headers, timeout=1.0)
                assert response.status_code == 200, (path, response.status_code)
                assert time.monotonic() - t0 < 1.0, path
            checks += 1
            time.sleep(0.05)
        assert len(holders.still_open) == GENERAL_SHARE, "uploads at a fair rate were cut"
    assert checks >= 5
