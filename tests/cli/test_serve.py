"""`gatewayctl serve` as a real process: what it says at start, its access log, the data dir lock
(a second server refuses at once and touches nothing), private files, and keys' last use persisted
in batches (never per request) and kept across a restart. One server for the module, and one with JSON
logs and metrics on a port of their own."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import UPSTREAM_KEY, upstream_config
from tests.support.gateway import GATEWAYCTL, MOCK_CONFIG, GatewayProcess, free_port
from tests.upstreams.openai_upstream import UpstreamProcess


@pytest.fixture(scope="module")
def served(upstream: UpstreamProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    process = GatewayProcess(
        tmp_path_factory.mktemp("serve"), upstream_config(upstream), {"TEST_UPSTREAM_KEY": UPSTREAM_KEY}
    ).start()
    yield process
    process.stop()


def _rows(gw: GatewayProcess, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(gw.database)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def _log(gw: GatewayProcess) -> str:
    return gw.log.read_text()


def _wait_for(gw: GatewayProcess, text: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and text not in _log(gw):
        time.sleep(0.05)


def test_serve_says_where_it_listens_and_what_it_loaded(served: GatewayProcess) -> None:
    log = _log(served)
    assert f"gateway listening on http://127.0.0.1:{served.port}" in log
    assert f"config: {served.config.resolve()}" in log
    assert f"database: {served.database.resolve()} (synchronous=FULL)" in log
    assert "providers (2): mock (mock), up (openai, http://127.0.0.1:" in log
    assert "models (4): mock-chat -> mock:mock-chat, mock-embed -> mock:mock-embed, gpt-4o-mini ->" in log
    assert "access log: on" in log


def test_one_access_log_line_per_request_without_secrets(served: GatewayProcess) -> None:
    created = served.cli_json("keys", "create", "--project", served.cli_json("projects", "create", "logged")["name"])
    client = openai.OpenAI(base_url=f"{served.url}/v1", api_key=created["key"], max_retries=0)
    reply = client.chat.completions.with_raw_response.create(
        model="mock-chat", messages=[{"role": "user", "content": "log me"}]
    )
    request_id = reply.headers["x-request-id"]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{served.url}/v1", api_key="gw_live_not-a-real-key", max_retries=0).models.list()
    _wait_for(served, f"request={request_id}")
    _wait_for(served, "path=/v1/models status=401")  # each line is written once its response has ended
    [line] = [line for line in _log(served).splitlines() if f"request={request_id}" in line]
    assert "gateway.access" in line and "method=POST path=/v1/chat/completions status=200" in line
    assert f"key={created['prefix']} model=mock-chat latency_ms=" in line
    cost = reply.parse().usage.model_extra["cost"]  # type: ignore[union-attr]
    assert f"cost={cost:.6f}".rstrip("0") in line or "cost=0.0000" in line
    refused = [line for line in _log(served).splitlines() if "path=/v1/models status=401" in line]
    assert refused and "key=- " in refused[-1]  # an unauthenticated key is never logged, not even its prefix
    log = _log(served)
    assert created["key"] not in log and served.admin_token not in log and "not-a-real-key" not in log


def test_json_logs_name_each_request_and_metrics_serve_on_their_own_port(tmp_path: Path) -> None:
    metrics_port = free_port()
    config = MOCK_CONFIG + f'\n[logging]\nformat = "json"\n\n[metrics]\nport = {metrics_port}\n'
    gw = GatewayProcess(tmp_path, config).start()
    try:
        key = gw.new_key("json-logs")
        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)
        reply = client.chat.completions.with_raw_response.create(
            model="mock-chat", messages=[{"role": "user", "content": "log me as JSON"}]
        )
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key + "x", max_retries=0).models.list()
        admin = {"authorization": f"Bearer {gw.admin_token}"}
        assert httpx.get(f"{gw.url}/metrics", headers=admin).status_code == 404  # not on the main port
        assert httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").status_code == 401
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", headers=admin)
    finally:
        gw.stop()
    assert scraped.status_code == 200
    requests = {
        (s.labels["model"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(scraped.text)
        for s in family.samples
        if s.name == "gateway_requests_total"
    }
    assert requests == {("mock-chat", "ok"): 1}
    log = gw.log.read_text()
    entries = [json.loads(line) for line in log.splitlines() if line.strip()]  # every line is one JSON object
    assert {"gateway listening on " + gw.url, "access log: on ([server] access_log = false turns it off)"} <= {
        e["message"] for e in entries
    }
    request_id = reply.headers["x-request-id"]
    [access] = [e for e in entries if e.get("request_id") == request_id]
    assert access["logger"] == "gateway.access" and "path=/v1/chat/completions status=200" in access["message"]
    assert any(e["logger"] == "gateway.access" and "status=401" in e["message"] for e in entries)
    assert key not in log and gw.admin_token not in log


def test_a_second_server_on_the_same_data_dir_refuses_at_once_and_touches_nothing(
    served: GatewayProcess, fresh_upstream: UpstreamProcess
) -> None:
    key = served.new_key("in-flight")
    fresh_upstream.set_behavior(delay_ms=2500)
    answers: list[int] = []

    def slow_call() -> None:
        response = httpx.post(
            f"{served.url}/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "slow"}]},
            headers={"authorization": f"Bearer {key}"},
            timeout=20,
        )
        answers.append(response.status_code)

    caller = threading.Thread(target=slow_call)
    caller.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not _rows(served, "SELECT 1 FROM requests WHERE status = 'pending'"):
        time.sleep(0.05)
    assert _rows(served, "SELECT 1 FROM requests WHERE status = 'pending'"), "the slow request is not in flight"
    port = free_port()
    started = time.monotonic()
    second = subprocess.run(
        [GATEWAYCTL, "serve", "--config", str(served.config), "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert time.monotonic() - started < 5
    assert second.returncode == 1 and second.stderr.count("\n") == 1
    assert f"another gateway (pid {served.proc.pid}) is serving" in second.stderr  # type: ignore[union-attr]
    assert "gateway listening" not in second.stderr + second.stdout
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    beside = subprocess.run(  # init beside a running server would have closed its requests too
        [GATEWAYCTL, "init", "--dir", str(served.dir), "--new-token"], capture_output=True, text=True, timeout=30
    )
    assert beside.returncode == 1 and "another gateway" in beside.stderr and "gwa_" not in beside.stdout
    caller.join(30)
    assert answers == [200]
    assert _rows(served, "SELECT COUNT(*) FROM requests WHERE status = 'interrupted'") == [(0,)]
    assert httpx.get(f"{served.url}/readyz").status_code == 200


def test_files_are_private_to_the_service_user(served: GatewayProcess) -> None:
    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    data = served.database.parent  # (this config.toml was written by the test; init's own is checked in test_cli)
    assert mode(data) == 0o700
    for name in ("gateway.db", "gateway.db-wal", "gateway.db-shm", "gateway.lock"):
        assert mode(data / name) == 0o600, name
    assert (data / "gateway.lock").read_text().strip() == str(served.proc.pid)  # type: ignore[union-attr]


def test_last_use_is_kept_in_memory_written_in_batches_and_survives_a_restart(served: GatewayProcess) -> None:
    created = served.cli_json("keys", "create", "--project", served.cli_json("projects", "create", "used")["name"])
    assert served.cli_json("keys", "show", created["id"])["last_used_ms"] is None
    client = openai.OpenAI(base_url=f"{served.url}/v1", api_key=created["key"], max_retries=0)
    before = int(time.time() * 1000)
    client.chat.completions.create(model="mock-chat", messages=[{"role": "user", "content": "hi"}])
    used = served.cli_json("keys", "show", created["id"])["last_used_ms"]
    assert used is not None and used >= before - 5
    # not written on the request path: the database learns it at the next batch (or at shutdown)
    assert _rows(served, "SELECT last_used_ms FROM api_keys WHERE id = ?", (created["id"],)) == [(None,)]
    served.stop()
    assert served.proc is not None and served.proc.returncode == 0  # SIGTERM: a clean drain exits 0
    assert _rows(served, "SELECT last_used_ms FROM api_keys WHERE id = ?", (created["id"],)) == [(used,)]
    served.start()
    assert served.cli_json("keys", "show", created["id"])["last_used_ms"] == used
    assert (
        "ago" in served.cli("keys", "list", "--project", "used").stdout
        or "just now" in served.cli("keys", "list", "--project", "used").stdout
    )
