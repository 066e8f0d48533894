"""Reload without a restart, against a real `gatewayctl serve`: SIGHUP with a new price card charges the
next request the new price while the call in flight keeps the old one (the usage row records the card it
used); a broken file is refused, the running config stays and serving goes on; `gatewayctl reload`
reports what changed, what needs a restart, and a refusal as a one-line error with exit 1."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import UPSTREAM_KEY, upstream_config
from tests.support.gateway import GatewayProcess
from tests.upstreams.openai_upstream import UpstreamProcess

OLD_PRICE = "price = { input = 0.15, output = 0.60, cached_input = 0.075 }"
NEW_PRICE = "price = { input = 1.5, output = 6.0 }"


@pytest.fixture(scope="module")
def gw(upstream: UpstreamProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    process = GatewayProcess(
        tmp_path_factory.mktemp("reload"), upstream_config(upstream), {"TEST_UPSTREAM_KEY": UPSTREAM_KEY}
    ).start()
    yield process
    process.stop()


def _chat(gw: GatewayProcess, key: str, text: str) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]},
        headers={"authorization": f"Bearer {key}"},
        timeout=20,
    )


def _wait_for_log(gw: GatewayProcess, text: str, count: int = 1, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gw.log.read_text().count(text) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} x{count} not in the log: {gw.log.read_text()[-2000:]}")


def _usage(gw: GatewayProcess, response: httpx.Response) -> dict[str, object]:
    return gw.admin(f"/requests/{response.headers['x-request-id']}")  # type: ignore[no-any-return]


def test_sighup_with_a_new_price_charges_the_next_request_and_not_the_one_in_flight(
    gw: GatewayProcess, fresh_upstream: UpstreamProcess
) -> None:
    key = gw.new_key("reloaded")
    config = gw.config.read_text()
    assert OLD_PRICE in config
    fresh_upstream.set_behavior(delay_ms=2000)
    answers: dict[str, httpx.Response] = {}
    in_flight = threading.Thread(target=lambda: answers.update(old=_chat(gw, key, "same words")))
    in_flight.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not fresh_upstream.received():
        time.sleep(0.02)
    assert fresh_upstream.received(), "the first call never reached the upstream"
    fresh_upstream.set_behavior(delay_ms=0)
    gw.config.write_text(config.replace(OLD_PRICE, NEW_PRICE))
    assert gw.proc is not None
    gw.proc.send_signal(signal.SIGHUP)
    _wait_for_log(gw, "config reloaded: generation 2")
    answers["new"] = _chat(gw, key, "same words")
    assert in_flight.is_alive(), "the call in flight ended before the reload was tested"
    in_flight.join(20)
    old, new = _usage(gw, answers["old"]), _usage(gw, answers["new"])
    assert old["status"] == new["status"] == "ok"
    assert old["price_card"]["input"] == 150_000 and old["price_card"]["output"] == 600_000  # type: ignore[index]
    assert new["price_card"]["input"] == 1_500_000 and new["price_card"]["output"] == 6_000_000  # type: ignore[index]
    assert (old["input_tokens"], old["output_tokens"]) == (new["input_tokens"], new["output_tokens"])
    assert new["cost_micro"] > 5 * old["cost_micro"] > 0  # type: ignore[operator]
    assert "models ~gpt-4o-mini" in gw.log.read_text()
    models = {
        m["id"]: m for m in httpx.get(f"{gw.url}/v1/models", headers={"authorization": f"Bearer {key}"}).json()["data"]
    }
    assert models["gpt-4o-mini"]["pricing"]["input"] == 1.5


def test_a_broken_file_is_refused_and_the_running_config_stays(gw: GatewayProcess) -> None:
    key = gw.new_key("refused")
    good = gw.config.read_text()
    before = _usage(gw, _chat(gw, key, "before"))
    try:
        gw.config.write_text(good + "\n[[models]\nname = \n")
        assert gw.proc is not None
        gw.proc.send_signal(signal.SIGHUP)
        _wait_for_log(gw, "config reload refused; the running config stays in force")
        assert httpx.get(f"{gw.url}/readyz").status_code == 200
        after = _usage(gw, _chat(gw, key, "before"))
        assert after["status"] == "ok" and after["price_card"] == before["price_card"]
        refused = gw.cli("reload", check=False)
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1
        assert (
            refused.stderr.startswith("error: 400 invalid_config: Reload refused") and "invalid TOML" in refused.stderr
        )
        gw.config.write_text(good.replace('name = "mock-embed"', 'name = "mock-embed"\ncontext_window = -1'))
        as_json = gw.cli("reload", "--json", check=False)
        assert as_json.returncode == 1
        error = json.loads(as_json.stdout)["error"]
        assert error["code"] == "invalid_config" and "context_window" in error["message"]
    finally:
        gw.config.write_text(good)
    assert _chat(gw, key, "still serving").status_code == 200


def test_gatewayctl_reload_says_what_changed_and_what_needs_a_restart(gw: GatewayProcess) -> None:
    good = gw.config.read_text()
    added = '\n[[models]]\nname = "mock-new"\ntargets = ["mock:mock-chat"]\nprice = { input = 3 }\n'
    try:
        gw.config.write_text(good.replace("max_body_bytes = 65536", "max_body_bytes = 70000") + added)
        shown = gw.cli("reload")
        assert "models: added mock-new" in shown.stdout
        assert "needs a restart to apply: server.max_body_bytes" in shown.stderr
        answer = gw.cli_json("reload")
        assert answer["changed"]["models"] == {"added": [], "removed": [], "changed": []}
        assert answer["took_ms"] < 1000 and answer["generation"] >= 3
        key = gw.new_key("new-model")
        reply = httpx.post(
            f"{gw.url}/v1/chat/completions",
            json={"model": "mock-new", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {key}"},
        )
        assert reply.status_code == 200 and _usage(gw, reply)["price_card"]["input"] == 3_000_000  # type: ignore[index]
    finally:
        gw.config.write_text(good)
        gw.cli("reload")
