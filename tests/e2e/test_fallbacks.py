"""Fallbacks through a real gateway: the first target fails in every way the issue lists, the second
serves, and the response says so; a failure after the first streamed byte is not retried."""

from __future__ import annotations

import socket
import struct
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support.gateway import GatewayProcess
from tests.upstreams.anthropic_upstream import AnthropicUpstreamProcess, start_anthropic_process
from tests.upstreams.openai_upstream import UpstreamProcess, expected_reply, start_upstream_process

MESSAGES = [{"role": "user", "content": "fall back please"}]


class ResettingServer:
    """Accepts TCP connections and resets them at once (SO_LINGER 0): a 'connection reset' upstream."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            try:
                conn.recv(65536)
            except OSError:
                pass
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture(scope="module")
def primary() -> Iterator[UpstreamProcess]:
    up = start_upstream_process()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def backup() -> Iterator[UpstreamProcess]:
    up = start_upstream_process()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def claude() -> Iterator[AnthropicUpstreamProcess]:
    up = start_anthropic_process()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def resetting() -> Iterator[ResettingServer]:
    server = ResettingServer()
    yield server
    server.stop()


def _config(
    primary: UpstreamProcess, backup: UpstreamProcess, claude: AnthropicUpstreamProcess, reset_port: int
) -> str:
    return f"""
[routing]
retries = 0
cooldown_failures = 1000

[[providers]]
name = "a"
kind = "openai"
base_url = "{primary.base_url}"
api_key_env = "KEY_A"
timeouts = {{ connect = 1, first_byte = 1, total = 10 }}

[[providers]]
name = "b"
kind = "openai"
base_url = "{backup.base_url}"
api_key_env = "KEY_B"

[[providers]]
name = "claude"
kind = "anthropic"
base_url = "{claude.base_url}"
api_key_env = "KEY_C"

[[providers]]
name = "reset"
kind = "openai"
base_url = "http://127.0.0.1:{reset_port}/v1"
api_key_env = "KEY_A"

[[models]]
name = "smart"
targets = ["a:model-a", "b:model-b"]
price = {{ input = 1, output = 2 }}

[[models]]
name = "claude-first"
targets = ["claude:claude-sonnet-4", "b:gpt-4o"]
price = {{ input = 3, output = 15 }}

[[models]]
name = "reset-first"
targets = ["reset:model-r", "b:model-b"]
price = {{ input = 1, output = 2 }}
"""


@pytest.fixture(scope="module")
def gw(
    primary: UpstreamProcess,
    backup: UpstreamProcess,
    claude: AnthropicUpstreamProcess,
    resetting: ResettingServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    env = {"KEY_A": "sk-a", "KEY_B": "sk-b", "KEY_C": "sk-ant-c"}
    process = GatewayProcess(
        tmp_path_factory.mktemp("fallbacks"), _config(primary, backup, claude, resetting.port), env
    ).start()
    yield process
    process.stop()


@pytest.fixture()
def client(gw: GatewayProcess, primary: UpstreamProcess, backup: UpstreamProcess) -> Iterator[openai.OpenAI]:
    primary.clear()
    backup.clear()
    yield openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.new_key("fallbacks"), max_retries=0, timeout=20)
    primary.clear()


def _assert_fell_back(raw: object, gw: GatewayProcess, first_status: object, model: str = "model-b") -> None:
    headers = raw.headers  # type: ignore[attr-defined]
    assert headers["x-model-used"] == model
    assert headers["x-fallback-depth"] == "1"
    assert headers["x-fallback-from"] in ("smart", "claude-first", "reset-first")
    row = gw.admin(f"/requests/{headers['x-request-id']}")
    assert [a["status"] for a in row["attempts"]] == [first_status, 200]
    assert row["status"] == "ok" and row["upstream_model"] == model and row["cost_micro"] > 0


@pytest.mark.parametrize(("behavior", "first_status"), [({"status": 500}, 500), ({"status": 429}, 429)])
def test_status_failures_fall_back(
    gw: GatewayProcess, client: openai.OpenAI, primary: UpstreamProcess, behavior: dict[str, int], first_status: int
) -> None:
    primary.set_behavior(**behavior)
    raw = client.chat.completions.with_raw_response.create(model="smart", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == expected_reply(MESSAGES)
    _assert_fell_back(raw, gw, first_status)


def test_first_byte_timeout_falls_back(gw: GatewayProcess, client: openai.OpenAI, primary: UpstreamProcess) -> None:
    primary.set_behavior(delay_ms=2500)  # provider a allows 1 s to the first byte
    raw = client.chat.completions.with_raw_response.create(model="smart", messages=MESSAGES)
    _assert_fell_back(raw, gw, "timeout")


def test_connection_reset_falls_back(gw: GatewayProcess, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="reset-first", messages=MESSAGES)
    headers = raw.headers
    assert headers["x-model-used"] == "model-b" and headers["x-fallback-depth"] == "1"
    row = gw.admin(f"/requests/{headers['x-request-id']}")
    assert row["attempts"][0]["target"] == "reset:model-r" and row["attempts"][0]["status"] in ("protocol", "connect")


def test_stream_broken_before_first_byte_falls_back(
    gw: GatewayProcess, client: openai.OpenAI, primary: UpstreamProcess
) -> None:
    primary.set_behavior(fail_after_chunks=0)
    with client.chat.completions.with_streaming_response.create(model="smart", messages=MESSAGES, stream=True) as raw:
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        assert raw.headers["x-model-used"] == "model-b" and raw.headers["x-fallback-depth"] == "1"
        request_id = raw.headers["x-request-id"]
    assert text == expected_reply(MESSAGES)
    row = gw.admin(f"/requests/{request_id}")
    assert row["attempts"][0]["status"] in ("truncated", "empty", "protocol") and row["attempts"][1]["status"] == 200


def test_stream_broken_after_first_byte_ends_with_error_and_is_metered(
    gw: GatewayProcess, client: openai.OpenAI, primary: UpstreamProcess, backup: UpstreamProcess
) -> None:
    primary.set_behavior(fail_after_chunks=3)
    request_id = str(uuid.uuid4())
    got = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(
            model="smart", messages=MESSAGES, stream=True, extra_headers={"x-request-id": request_id}
        ):
            got.append(chunk)
    assert len(got) == 3
    assert backup.received() == []  # no fallback once bytes reached the client
    row = gw.admin(f"/requests/{request_id}")
    assert row["status"] == "upstream_failed" and row["estimated"] == 1
    assert row["output_tokens"] > 0 and row["cost_micro"] > 0


def test_other_4xx_is_not_a_reason_to_fall_back(
    gw: GatewayProcess, client: openai.OpenAI, primary: UpstreamProcess, backup: UpstreamProcess
) -> None:
    primary.set_behavior(status=400)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="smart", messages=MESSAGES)
    assert backup.received() == []


def test_every_target_failing_names_the_last_error(
    gw: GatewayProcess, client: openai.OpenAI, primary: UpstreamProcess, backup: UpstreamProcess
) -> None:
    primary.set_behavior(status=503)
    backup.set_behavior(status=500, times=1)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="smart", messages=MESSAGES)
    assert info.value.status_code == 502
    assert "All upstream targets failed" in info.value.message and "b returned 500" in info.value.message


def test_anthropic_overloaded_lands_on_openai(
    gw: GatewayProcess, client: openai.OpenAI, claude: AnthropicUpstreamProcess
) -> None:
    claude.set_behavior(status=529)
    try:
        raw = client.chat.completions.with_raw_response.create(model="claude-first", messages=MESSAGES)
    finally:
        claude.clear()
    _assert_fell_back(raw, gw, 529, model="gpt-4o")
    assert raw.headers["x-fallback-from"] == "claude-first"
    served = client.chat.completions.with_raw_response.create(model="claude-first", messages=MESSAGES)
    assert served.headers["x-model-used"] == "claude-sonnet-4" and "x-fallback-depth" not in served.headers
    sent = claude.received()[-1]
    assert sent["headers"]["anthropic-version"] and sent["headers"]["x-api-key"] == "sk-ant-c"
    assert sent["json"]["max_tokens"] > 0


def test_a_failing_provider_is_cooled_down(
    primary: UpstreamProcess, backup: UpstreamProcess, tmp_path: Path, claude: AnthropicUpstreamProcess
) -> None:
    config = _config(primary, backup, claude, 9).replace("cooldown_failures = 1000", "cooldown_failures = 2")
    other = GatewayProcess(tmp_path, config, {"KEY_A": "sk-a", "KEY_B": "sk-b", "KEY_C": "x"}).start()
    try:
        primary.clear()
        primary.set_behavior(status=500)
        client = openai.OpenAI(base_url=f"{other.url}/v1", api_key=other.new_key("cool"), max_retries=0)
        for _ in range(2):
            client.chat.completions.create(model="smart", messages=MESSAGES)
        tried_before = len(primary.received())
        raw = client.chat.completions.with_raw_response.create(model="smart", messages=MESSAGES)
        assert len(primary.received()) == tried_before  # a is cooling down: not even tried
        assert raw.headers["x-model-used"] == "model-b" and raw.headers["x-fallback-depth"] == "1"
    finally:
        primary.clear()
        other.stop()
