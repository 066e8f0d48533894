"""Signed webhooks in process: the real app and its delivery worker in the test's loop, SQLite on a temp
file, and a real receiver on 127.0.0.1 (a subprocess that can fail on demand). Every event type is
delivered once and verifies with standardwebhooks and the openai SDK; request.completed is written only
for subscribers; rotation, retries, Retry-After, order, disabling, DNS rebinding, key scopes."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from server.clock import now_ms
from server.webhooks.addresses import Destination
from server.webhooks.sender import Answer
from tests.inproc.harness import BASE_CONFIG, InProc, auth, running
from tests.upstreams.stripe_events import encode_event, make_event, sign_payload
from tests.upstreams.webhook_receiver import Receiver, start_receiver

HOOKS = '[webhooks]\nallow_http = true\nallow_networks = ["127.0.0.0/8"]\nretry_schedule_s = [0.2, 0.3, 0.3, 0.3]\n'
STRIPE_SECRET = "whsec_inproc_stripe"
SIX = [
    "wallet.recharged",
    "invoice.paid",
    "key.revoked",
    "usage.threshold_reached",
    "request.completed",
    "request.rate_limited",
]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = start_receiver()
    yield rec
    rec.stop()


def _db(path: Path, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, args).fetchall()


async def _arrived(receiver: Receiver, path: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The requests at `path` once there are `count` of them (bounded wait, the loop keeps running)."""
    deadline = time.monotonic() + timeout
    while True:
        got = receiver.received(path)
        if len(got) >= count or time.monotonic() > deadline:
            assert len(got) >= count, f"{len(got)} of {count} arrived at {path}: {[g['body'][:80] for g in got]}"
            return got
        await asyncio.sleep(0.05)


async def _endpoint(gw: InProc, key: str, url: str, events: list[str]) -> dict[str, Any]:
    answer = await gw.client.post("/v1/webhooks/endpoints", json={"url": url, "events": events}, headers=auth(key))
    assert answer.status_code == 201, answer.text
    worker = gw.gateway.webhooks.worker
    worker.poll_s = 0.05  # look for work every 50 ms in these tests (0.5 s in service)
    worker.wake()
    return dict(answer.json())


async def _stripe(gw: InProc, event: dict[str, Any]) -> None:
    payload = encode_event(event)
    headers = {"stripe-signature": sign_payload(payload, STRIPE_SECRET), "content-type": "application/json"}
    answer = await gw.client.post("/stripe/webhook", content=payload, headers=headers)
    assert answer.status_code == 200, answer.text


async def _make_all_six(gw: InProc, project: dict[str, Any], key: str) -> None:
    """One fact of each kind for the project, through the paths that really produce them."""
    other = (await gw.admin.post("/admin/v1/keys", json={"project": "six"})).json()
    await gw.admin.post(f"/admin/v1/keys/{other['id']}/revoke")  # key.revoked
    await gw.admin.post("/admin/v1/wallet/six/credit", json={"amount": "2.5", "reason": "gift"})  # wallet.recharged
    store = gw.gateway.store
    await store.create_topup_order(
        {"id": "ord_1", "project_id": project["id"], "session_id": "cs_1", "amount_micro": 5_000_000,
         "currency": "usd", "created_ms": now_ms()}
    )  # fmt: skip
    session = {
        "id": "cs_1",
        "object": "checkout.session",
        "amount_total": 500,
        "currency": "usd",
        "payment_status": "paid",
        "payment_intent": "pi_1",
        "metadata": {"project_id": project["id"]},
    }
    await _stripe(gw, make_event("checkout.session.completed", session, event_id="evt_stripe_1"))  # and from Stripe
    invoice = await store.number_invoice(project["id"], "2026-01", 1_000, 0, "INV-", {}, now_ms())
    await store.set_stripe_invoice(invoice["id"], "in_1")
    await _stripe(gw, make_event("invoice.paid", {"id": "in_1", "object": "invoice"}, event_id="evt_stripe_2"))
    limited = await gw.key("six", rpm=1)
    assert (await gw.chat(limited, model="mock-chat", max_tokens=1)).status_code == 200
    assert (await gw.chat(limited, model="mock-chat", max_tokens=1)).status_code == 429  # request.rate_limited
    for _ in range(60):  # request.completed each time, until spend crosses half the budget
        big = [{"role": "user", "content": "x" * 400}]
        assert (await gw.chat(key, model="mock-chat", max_tokens=1, messages=big)).status_code == 200
        if _db(gw.database, "SELECT 1 FROM outbox WHERE event_type = 'usage.threshold_reached'"):
            return
    raise AssertionError("no threshold was crossed")


async def test_each_event_type_arrives_once_signed_so_both_libraries_verify_it(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET)
    async with running(tmp_path, server_extra=HOOKS) as gw:
        project = await gw.project("six", monthly_budget="0.001")
        key = await gw.key("six")
        endpoint = await _endpoint(gw, key, receiver.url("/six"), SIX)
        secret = endpoint["secret"]
        assert secret.startswith("whsec_")
        shown = await gw.client.get(f"/v1/webhooks/endpoints/{endpoint['id']}", headers=auth(key))
        assert "secret" not in shown.json()  # shown only when it is made
        await _make_all_six(gw, project, key)
        expected = {row[0] for row in _db(gw.database, "SELECT id FROM outbox WHERE project_id = ?", (project["id"],))}
        got = await _arrived(receiver, "/six", len(expected))
        await asyncio.sleep(0.3)  # time for a duplicate to show, if one were sent
        got = receiver.received("/six")
    ids = Counter(r["headers"]["webhook-id"] for r in got)
    assert set(ids) == expected and set(ids.values()) == {1}  # each event once
    types = {orjson.loads(r["body"])["type"] for r in got}
    assert types == set(SIX)
    client = openai.OpenAI(api_key="sk-unused")
    for request in got:
        body, headers = request["body"], request["headers"]
        event = Webhook(secret).verify(body, headers)
        client.webhooks.verify_signature(body, headers, secret=secret)
        assert event["id"] == headers["webhook-id"] and event["data"]["project_id"] == project["id"]
        for name in event["data"]:
            if name.endswith("_micro"):  # amounts twice: micro-units, and credits as a string
                assert isinstance(event["data"][name.removesuffix("_micro")], str)
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + "A" * 32).verify(body, headers)
        with pytest.raises(openai.InvalidWebhookSignatureError):
            client.webhooks.verify_signature(body, headers, secret="whsec_" + "A" * 32)
    by_type = {orjson.loads(r["body"])["type"]: orjson.loads(r["body"])["data"] for r in got}
    assert by_type["request.completed"]["model"] == "mock-chat" and by_type["request.completed"]["cost_micro"] > 0
    limited = by_type["request.rate_limited"]
    assert limited["model"] == "mock-chat" and limited["request_id"] and "key limit of 1 requests" in limited["message"]
    recharges = [orjson.loads(r["body"])["data"] for r in got if "recharged" in r["headers"]["webhook-id"]]
    assert sorted((d["source"], d["amount"]) for d in recharges) == [("adjustment", "2.5"), ("stripe", "5")]


async def test_request_completed_is_written_only_for_projects_that_subscribe(tmp_path: Path) -> None:
    async with running(tmp_path, server_extra=HOOKS) as gw:
        await gw.project("quiet")
        await gw.project("loud")
        quiet, loud = await gw.key("quiet"), await gw.key("loud")
        await _endpoint(gw, loud, "http://127.0.0.1:9/never", ["key.revoked"])  # not request.completed
        assert (await gw.chat(quiet, model="mock-chat")).status_code == 200
        assert (await gw.chat(loud, model="mock-chat")).status_code == 200
        hooked = await _endpoint(gw, loud, "http://127.0.0.1:9/never", ["request.completed"])
        answer = await gw.chat(loud, model="mock-chat")
        await gw.client.delete(f"/v1/webhooks/endpoints/{hooked['id']}", headers=auth(loud))
        assert (await gw.chat(loud, model="mock-chat")).status_code == 200
        await gw.quiesce()
        completed = _db(gw.database, "SELECT id FROM outbox WHERE event_type = 'request.completed'")
    assert completed == [(f"evt_request_completed_{answer.headers['x-request-id']}",)]


async def test_a_rotated_secret_signs_beside_the_old_one_during_the_overlap(tmp_path: Path, receiver: Receiver) -> None:
    async with running(tmp_path, server_extra=HOOKS) as gw:
        await gw.project("rot")
        key = await gw.key("rot")
        endpoint = await _endpoint(gw, key, receiver.url("/rot"), ["wallet.recharged"])
        path = f"/v1/webhooks/endpoints/{endpoint['id']}/rotate_secret"
        rotated = (await gw.client.post(path, headers=auth(key))).json()
        assert rotated["secret"] != endpoint["secret"] and rotated["previous_secret_expires_ms"] > now_ms()
        await gw.admin.post("/admin/v1/wallet/rot/credit", json={"amount": "1", "reason": "r"})
        (request,) = await _arrived(receiver, "/rot", 1)
    assert len(request["headers"]["webhook-signature"].split(" ")) == 2
    for secret in (endpoint["secret"], rotated["secret"]):
        Webhook(secret).verify(request["body"], request["headers"])
        openai.OpenAI(api_key="x").webhooks.verify_signature(request["body"], request["headers"], secret=secret)


async def test_failures_are_retried_with_every_attempt_recorded_and_retry_after_honoured(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.behave("/retry", status=500, times=2)
    async with running(tmp_path, server_extra=HOOKS) as gw:
        await gw.project("re")
        key = await gw.key("re")
        await _endpoint(gw, key, receiver.url("/retry"), ["wallet.recharged"])
        await gw.admin.post("/admin/v1/wallet/re/credit", json={"amount": "1", "reason": "r"})
        tries = await _arrived(receiver, "/retry", 3)
        receiver.behave("/retry", status=503, retry_after=1, times=1)
        await gw.admin.post("/admin/v1/wallet/re/credit", json={"amount": "2", "reason": "r"})
        later = await _arrived(receiver, "/retry", 5)
        await asyncio.sleep(0.2)
        deliveries = (await gw.admin.get("/admin/v1/webhooks/deliveries", params={"project": "re"})).json()["data"]
        first = (await gw.admin.get(f"/admin/v1/webhooks/deliveries/{deliveries[-1]['id']}")).json()
    assert len({t["headers"]["webhook-id"] for t in tries}) == 1  # the same event id on every retry
    assert [a["response_code"] for a in first["attempt_log"]] == [500, 500, 200]
    assert first["attempt_log"][0]["response_body"] == '{"ok": false, "status": 500}'
    assert first["status"] == "delivered" and all(a["latency_ms"] >= 0 for a in first["attempt_log"])
    assert later[4]["at"] - later[3]["at"] >= 0.95  # the 503 asked for a second


async def test_an_endpoint_that_was_down_gets_everything_in_event_order(tmp_path: Path, receiver: Receiver) -> None:
    receiver.behave("/order", status=503)
    async with running(tmp_path, server_extra=HOOKS) as gw:
        await gw.project("ord")
        key = await gw.key("ord")
        await _endpoint(gw, key, receiver.url("/order"), ["wallet.recharged"])
        for n in range(1, 6):
            await gw.admin.post("/admin/v1/wallet/ord/credit", json={"amount": str(n), "reason": "r", "id": f"c{n}"})
        await _arrived(receiver, "/order", 2)
        receiver.behave("/order", status=200)
        got = await _arrived(receiver, "/order", 7)
    delivered = [r["headers"]["webhook-id"] for r in got if r["at"] >= got[-5]["at"]][-5:]
    assert delivered == [f"evt_recharged_adjustment_c{n}" for n in range(1, 6)]


async def test_an_endpoint_failing_for_days_is_disabled_and_can_be_enabled_again(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.behave("/dis", status=500)
    async with running(tmp_path, server_extra=HOOKS) as gw:
        await gw.project("dis")
        key = await gw.key("dis")
        endpoint = await _endpoint(gw, key, receiver.url("/dis"), ["wallet.recharged"])
        six_days_ago = now_ms() - 6 * 86_400_000
        await gw.gateway.store.writer.run(
            lambda c: c.execute("UPDATE webhook_endpoints SET failing_since_ms = ?", (six_days_ago,))
        )
        await gw.admin.post("/admin/v1/wallet/dis/credit", json={"amount": "1", "reason": "r"})
        await _arrived(receiver, "/dis", 1)
        for _ in range(100):
            shown = (await gw.admin.get(f"/admin/v1/webhooks/endpoints/{endpoint['id']}")).json()
            if shown["status"] == "disabled":
                break
            await asyncio.sleep(0.05)
        assert shown["status"] == "disabled" and shown["disabled_reason"].startswith("every delivery failed since")
        (failed,) = (await gw.admin.get("/admin/v1/webhooks/deliveries", params={"status": "failed"})).json()["data"]
        assert gw.gateway.webhooks.subscriptions.enabled == 0
        refused = await gw.admin.post(f"/admin/v1/webhooks/deliveries/{failed['id']}/redeliver")
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "endpoint_not_enabled"
        receiver.behave("/dis", status=200)
        assert (await gw.admin.post(f"/admin/v1/webhooks/endpoints/{endpoint['id']}/enable")).status_code == 200
        assert (await gw.admin.post(f"/admin/v1/webhooks/deliveries/{failed['id']}/redeliver")).status_code == 200
        again = await _arrived(receiver, "/dis", 2)
    assert again[-1]["headers"]["webhook-id"] == failed["event_id"]


class _NeverSend:
    """A sender that refuses to touch the network: any call is the product being wrong."""

    def __init__(self) -> None:
        self.calls: list[Destination] = []

    async def post(self, destination: Destination, *args: Any) -> Answer:
        self.calls.append(destination)
        raise AssertionError(f"tried to connect to {destination.addresses}")


async def test_a_dns_answer_that_turns_private_after_registration_is_refused_before_connecting(tmp_path: Path) -> None:
    answers = {"hooks.example": ["93.184.216.34"]}  # public at registration (a literal answer: no lookup)

    async def resolver(host: str, port: int) -> list[str]:
        return answers[host]

    async with running(tmp_path, server_extra=HOOKS) as gw:
        worker = gw.gateway.webhooks.worker
        worker.resolver, never = resolver, _NeverSend()
        worker.sender = never  # type: ignore[assignment]
        await gw.project("dns")
        key = await gw.key("dns")
        await _endpoint(gw, key, "https://hooks.example/x", ["wallet.recharged"])
        answers["hooks.example"] = ["10.0.0.7"]  # rebinding: the name now points inside
        await gw.admin.post("/admin/v1/wallet/dns/credit", json={"amount": "1", "reason": "r"})
        for _ in range(100):
            (delivery,) = (await gw.admin.get("/admin/v1/webhooks/deliveries")).json()["data"]
            if delivery["attempts"]:
                break
            await asyncio.sleep(0.05)
    assert never.calls == []
    assert delivery["last_error"].startswith("refused: hooks.example resolves to 10.0.0.7, a private address")


async def test_the_connection_goes_to_the_checked_address_with_the_name_kept_in_host(
    tmp_path: Path, receiver: Receiver
) -> None:
    async def resolver(host: str, port: int) -> list[str]:  # a name the system cannot resolve: no second lookup
        return ["127.0.0.1"] if host == "hooks.test" else []

    async with running(tmp_path, server_extra=HOOKS) as gw:
        gw.gateway.webhooks.worker.resolver = resolver
        await gw.project("pin")
        key = await gw.key("pin")
        await _endpoint(gw, key, f"http://hooks.test:{receiver.port}/pin", ["wallet.recharged"])
        await gw.admin.post("/admin/v1/wallet/pin/credit", json={"amount": "1", "reason": "r"})
        (request,) = await _arrived(receiver, "/pin", 1)
    assert request["headers"]["host"] == f"hooks.test:{receiver.port}"


async def test_the_key_api_is_scoped_to_the_keys_project_and_to_the_webhooks_class(tmp_path: Path) -> None:
    async with running(tmp_path, server_extra=HOOKS) as gw:
        await gw.project("a")
        await gw.project("b")
        key_a, key_b = await gw.key("a"), await gw.key("b")
        chat_only = await gw.key("a", endpoints=["chat"])
        mine = await _endpoint(gw, key_a, "http://127.0.0.1:9/a", ["key.revoked"])
        path = f"/v1/webhooks/endpoints/{mine['id']}"
        assert (await gw.client.get(path, headers=auth(key_b))).status_code == 404
        assert (await gw.client.delete(path, headers=auth(key_b))).status_code == 404
        assert (await gw.client.get("/api/v1/webhooks/endpoints", headers=auth(key_b))).json()["data"] == []
        listed = (await gw.client.get("/v1/webhooks/endpoints", headers=auth(key_a))).json()
        assert [e["id"] for e in listed["data"]] == [mine["id"]] and listed["object"] == "list"
        refused = await gw.client.get("/v1/webhooks/endpoints", headers=auth(chat_only))
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "endpoint_not_allowed"
        bad = await gw.client.post(
            "/v1/webhooks/endpoints", json={"url": "http://127.0.0.1:9/", "events": ["nope"]}, headers=auth(key_a)
        )
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "unknown_event_type"
        empty = await gw.client.post("/v1/webhooks/endpoints", json={"url": "http://127.0.0.1:9/"}, headers=auth(key_a))
        assert empty.status_code == 400 and empty.json()["error"]["param"] == "events"
        deleted = await gw.client.delete(path, headers=auth(key_a))
        assert deleted.json() == {"id": mine["id"], "object": "webhook_endpoint", "deleted": True}
        assert (await gw.client.get(path, headers=auth(key_a))).status_code == 404


async def test_urls_are_refused_with_a_clear_400_by_the_rules_in_config(tmp_path: Path) -> None:
    strict = "[webhooks]\nallow_http = true\n"
    async with running(tmp_path, server_extra=strict) as gw:
        await gw.project("s")
        key = await gw.key("s")
        for url, why in [
            ("http://127.0.0.1:9/x", "127.0.0.1, a loopback address"),
            ("https://10.1.2.3/x", "10.1.2.3, a private address"),
            ("https://169.254.169.254/latest", "169.254.169.254, a cloud metadata address"),
            ("https://[::ffff:127.0.0.1]/x", "::ffff:127.0.0.1, a loopback address"),
            ("http://2130706433:9/x", "2130706433 resolves to 127.0.0.1, a loopback address"),  # odd spellings of
            ("http://0x7f000001:9/x", "0x7f000001 resolves to 127.0.0.1, a loopback address"),  # an address are
            ("http://0177.0.0.1:9/x", "0177.0.0.1 resolves to 127.0.0.1, a loopback address"),  # judged resolved
            ("https://user:pw@127.0.0.1/", "must not carry a user name or password"),
        ]:
            answer = await gw.client.post(
                "/v1/webhooks/endpoints", json={"url": url, "events": ["key.revoked"]}, headers=auth(key)
            )
            error = answer.json()["error"]
            assert answer.status_code == 400 and error["code"] == "url_refused" and error["param"] == "url"
            assert error["message"].startswith("Webhook URL refused: ") and why in error["message"], error
    (tmp_path / "https-only").mkdir()
    async with running(tmp_path / "https-only", server_extra="") as gw:
        await gw.project("h")
        key = await gw.key("h")
        answer = await gw.client.post(
            "/v1/webhooks/endpoints", json={"url": "http://127.0.0.1:9/", "events": ["key.revoked"]}, headers=auth(key)
        )
        assert "must use https (http:// only with [webhooks] allow_http = true)" in answer.json()["error"]["message"]


async def test_old_events_and_finished_deliveries_are_purged_pending_ones_stay(tmp_path: Path) -> None:
    """Maintenance drops events past [webhooks] retention_days with their finished deliveries and attempts;
    a delivery still pending keeps its event."""
    from server.maintenance import DAY_MS, Maintenance

    async with running(tmp_path, BASE_CONFIG) as gw:
        await gw.project("p")
        await gw.admin.post("/admin/v1/wallet/p/credit", json={"amount": "1", "reason": "x"})
        await gw.quiesce()
        old = now_ms() - 100 * DAY_MS
        with sqlite3.connect(gw.database) as conn:
            events = [row[0] for row in conn.execute("SELECT id FROM outbox")]
            assert events
            conn.execute("UPDATE outbox SET created_ms = ?", (old,))
            conn.execute(
                "INSERT INTO webhook_endpoints (id, project_id, url, events, secret, status, created_ms)"
                " SELECT 'we_1', id, 'https://example.com/h', '[]', 's', 'enabled', 0 FROM projects LIMIT 1"
            )
            conn.execute(
                "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, project_id, event_type, event_ms, status,"
                " attempts) SELECT 'wd_pending', id, 'we_1', project_id, event_type, ?, 'pending', 0 FROM outbox"
                " LIMIT 1",
                (old,),
            )
        await Maintenance(gw.gateway).once()
        with sqlite3.connect(gw.database) as conn:
            left = [row[0] for row in conn.execute("SELECT id FROM outbox")]
            pending = conn.execute("SELECT COUNT(*) FROM webhook_deliveries").fetchone()[0]
        assert len(left) == 1 and pending == 1  # only the event a pending delivery still needs
