"""Signed webhooks end to end: a real `gatewayctl serve`, real receivers on 127.0.0.1 that fail on demand,
the CLI (create, list, test, deliveries, redeliver, delete), a receiver down then up, kill -9 with
undelivered events, a redirect not followed, a hanging receiver that delays nobody else, and loopback
URLs refused while the allowlist is empty. Traffic goes only to 127.0.0.1 and ::1."""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import openai
import pytest
from standardwebhooks import Webhook

from tests.support.gateway import MOCK_CONFIG, GatewayProcess
from tests.upstreams.webhook_receiver import Receiver, start_receiver

HOOKS = """
[webhooks]
allow_http = true
allow_networks = ["127.0.0.0/8"]
retry_schedule_s = [0.3, 0.5, 0.5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]  # ~18 s of tries
"""
T = TypeVar("T")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = start_receiver()
    yield rec
    rec.stop()


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(tmp_path_factory.mktemp("webhooks"), MOCK_CONFIG + HOOKS).start()
    yield gw
    gw.stop()


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 15.0) -> T:
    """Poll `probe` until it returns something (bounded in time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def arrived(receiver: Receiver, path: str, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]] | None:
        got = receiver.received(path)
        return got if len(got) >= count else None

    return eventually(enough, f"{count} requests at {path}", timeout)


def register(gw: GatewayProcess, project: str, url: str, events: str) -> dict[str, Any]:
    if project not in {p["name"] for p in gw.cli_json("projects", "list")}:
        gw.cli_json("projects", "create", project)
    return dict(gw.cli_json("webhooks", "create", url, "--project", project, "--events", events))


def credit(gw: GatewayProcess, project: str, amount: str, ref: str) -> None:
    gw.cli_json("wallet", "credit", "--project", project, "--amount", amount, "--reason", "test", "--id", ref)


def test_the_cli_registers_tests_lists_redelivers_and_deletes(hooked: GatewayProcess, receiver: Receiver) -> None:
    endpoint = register(hooked, "cli", receiver.url("/cli"), "wallet.recharged,key.revoked")
    secret = endpoint["secret"]
    assert endpoint["id"].startswith("we_") and secret.startswith("whsec_")
    listed = hooked.cli("webhooks", "list", "--project", "cli").stdout
    assert endpoint["id"] in listed and "enabled" in listed and "secret" not in listed
    tested = hooked.cli("webhooks", "test", endpoint["id"])
    assert tested.stdout.startswith("delivered: 200 in ")
    (test_event,) = receiver.received("/cli")
    assert Webhook(secret).verify(test_event["body"], test_event["headers"])["type"] == "webhook.test"

    credit(hooked, "cli", "3", "cli-1")
    got = arrived(receiver, "/cli", 2)[-1]
    event = Webhook(secret).verify(got["body"], got["headers"])
    openai.OpenAI(api_key="x").webhooks.verify_signature(got["body"], got["headers"], secret=secret)
    data = event["data"]
    assert (event["type"], data["amount"], data["amount_micro"]) == ("wallet.recharged", "3", 3_000_000)
    rows = hooked.cli_json("webhooks", "deliveries", "--endpoint", endpoint["id"], "--status", "delivered")
    (delivery,) = [row for row in rows if row["event_type"] == "wallet.recharged"]
    shown = hooked.cli("webhooks", "deliveries", "--endpoint", endpoint["id"]).stdout
    assert delivery["id"] in shown and "wallet.recharged" in shown and "200" in shown

    assert "queued" in hooked.cli("webhooks", "redeliver", delivery["id"]).stdout
    again = arrived(receiver, "/cli", 3)[-1]
    assert again["headers"]["webhook-id"] == got["headers"]["webhook-id"] == event["id"]  # same event id

    assert "deleted" in hooked.cli("webhooks", "delete", endpoint["id"]).stdout
    assert hooked.cli_json("webhooks", "list", "--project", "cli") == []
    bad = hooked.cli("webhooks", "deliveries", "--status", "bogus", check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")
    missing = hooked.cli("webhooks", "test", "we_nope", check=False)
    assert missing.returncode == 1 and "webhook_endpoint_not_found" in missing.stderr


def test_events_wait_while_the_receiver_is_down_and_all_arrive_once_in_order(hooked: GatewayProcess) -> None:
    down = start_receiver()
    try:
        register(hooked, "down", down.url("/down"), "wallet.recharged")
        port = down.port
        down.stop()  # the receiver goes away: connections are refused
        for n in range(1, 5):
            credit(hooked, "down", str(n), f"down-{n}")
        eventually(lambda: _failed_attempts(hooked, "down") >= 2, "two failed attempts while the receiver is down")
        down = start_receiver(port)  # back, on the same port
        got = arrived(down, "/down", 4)
        time.sleep(0.5)  # a duplicate would show by now
        got = down.received("/down")
    finally:
        down.stop()
    ids = [r["headers"]["webhook-id"] for r in got]
    assert Counter(ids) == Counter({f"evt_recharged_adjustment_down-{n}": 1 for n in range(1, 5)})
    assert ids == [f"evt_recharged_adjustment_down-{n}" for n in range(1, 5)]  # in the order they happened


def _failed_attempts(gw: GatewayProcess, project: str) -> int:
    """Attempts made so far: only the oldest delivery is tried while it fails (the others wait behind it)."""
    rows = gw.cli_json("webhooks", "deliveries", "--project", project)
    assert all(row["status"] == "pending" for row in rows)
    return sum(row["attempts"] for row in rows)


def test_a_redirect_is_not_followed(hooked: GatewayProcess, receiver: Receiver) -> None:
    other = start_receiver()
    try:
        receiver.behave("/redir", status=302, location=other.url("/landing"))
        endpoint = register(hooked, "redir", receiver.url("/redir"), "wallet.recharged")
        credit(hooked, "redir", "1", "redir-1")
        arrived(receiver, "/redir", 1)
        listing = ("webhooks", "deliveries", "--endpoint", endpoint["id"])
        (delivery,) = eventually(lambda: [d for d in hooked.cli_json(*listing) if d["attempts"]], "an attempt recorded")
        time.sleep(0.5)
        assert other.received() == [] and receiver.received("/landing") == []
    finally:
        other.stop()
        hooked.cli("webhooks", "delete", endpoint["id"])
    assert delivery["last_status_code"] == 302 and delivery["status"] == "pending"  # a failure, to be retried


def test_a_hanging_receiver_does_not_delay_other_endpoints(hooked: GatewayProcess, receiver: Receiver) -> None:
    receiver.behave("/hang", delay_ms=30_000)
    hanging = register(hooked, "hang", receiver.url("/hang"), "key.revoked")
    register(hooked, "hang", receiver.url("/fast"), "key.revoked")
    try:
        keys = [hooked.cli_json("keys", "create", "--project", "hang")["id"] for _ in range(2)]
        hooked.cli_json("keys", "revoke", keys[0])
        arrived(receiver, "/hang", 1)  # the hanging endpoint holds its first delivery
        started = time.monotonic()
        hooked.cli_json("keys", "revoke", keys[1])
        fast = arrived(receiver, "/fast", 2, timeout=8)
        assert time.monotonic() - started < 5  # far less than the 10 s the hanging attempt may take
        assert len(receiver.received("/hang")) == 1  # still waiting on its answer, not sending the next
    finally:
        hooked.cli("webhooks", "delete", hanging["id"])
    assert [json.loads(r["body"])["data"]["key_id"] for r in fast] == keys


def test_loopback_urls_are_refused_while_the_allowlist_is_empty(gateway: GatewayProcess, receiver: Receiver) -> None:
    key = gateway.new_key("ssrf")
    for host, address in [("127.0.0.1", "127.0.0.1"), ("localhost", ""), ("[::1]", "::1")]:
        url = f"http://{host}:{receiver.port}/ssrf"
        answer = httpx.post(
            f"{gateway.url}/v1/webhooks/endpoints",
            json={"url": url, "events": ["key.revoked"]},
            headers={"authorization": f"Bearer {key}"},
        )
        error = answer.json()["error"]
        assert answer.status_code == 400 and error["code"] == "url_refused", answer.text
        assert "a loopback address" in error["message"] and address in error["message"]
    assert receiver.received("/ssrf") == []


def test_undelivered_events_survive_kill_9(hooked: GatewayProcess, receiver: Receiver) -> None:
    receiver.behave("/k9", status=500)
    register(hooked, "k9", receiver.url("/k9"), "wallet.recharged")
    for n in range(1, 4):
        credit(hooked, "k9", str(n), f"k9-{n}")
    arrived(receiver, "/k9", 1)
    hooked.kill9()  # nothing delivered yet: the events live only in the database
    with sqlite3.connect(hooked.database) as conn:
        pending = conn.execute("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'").fetchone()[0]
    assert pending == 3
    receiver.behave("/k9", status=200)
    back = time.time()
    hooked.start()
    wanted = {f"evt_recharged_adjustment_k9-{n}" for n in range(1, 4)}
    eventually(
        lambda: wanted <= {r["headers"]["webhook-id"] for r in receiver.received("/k9") if r["at"] >= back},
        "every event delivered after the restart",
    )
