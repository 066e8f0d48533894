"""Webhook retry rules, the signed message and the sender's request, as pure checks: no socket is opened
(the sender runs on httpx's MockTransport)."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import httpx
import openai
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from server.store.webhook_protocol import DELIVERED, FAILED, PENDING, Delivery, WebhookEndpoint
from server.webhooks import message
from server.webhooks.addresses import Destination
from server.webhooks.schedule import DAY_MS, disable_reason, plan_round, retry_delay_s
from server.webhooks.sender import Answer, Sender, retry_after_s

SCHEDULE = [5.0, 300.0, 1800.0]


def test_retries_follow_the_schedule_with_jitter_then_stop() -> None:
    assert retry_delay_s(1, SCHEDULE, rand=lambda: 0.0) == 5.0
    assert retry_delay_s(1, SCHEDULE, rand=lambda: 1.0) == pytest.approx(6.0)  # at most 20 % later
    assert retry_delay_s(3, SCHEDULE, rand=lambda: 0.0) == 1800.0
    assert retry_delay_s(4, SCHEDULE) is None  # one attempt more than there are delays


def test_the_default_schedule_spans_about_three_days_in_at_least_eight_attempts() -> None:
    from server.settings import WebhookSettings

    delays = WebhookSettings().retry_schedule_s
    assert len(delays) + 1 >= 8
    assert 2.5 * 86_400 <= sum(delays) <= 3.5 * 86_400


def test_retry_after_is_honoured_on_429_and_503_only_and_capped_at_a_day() -> None:
    now = time.time()
    assert retry_after_s(503, "120", now) == 120.0
    assert retry_after_s(429, time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 60)), now) == (
        pytest.approx(60, abs=1.5)
    )
    assert retry_after_s(500, "120", now) is None
    assert retry_after_s(503, "soon", now) is None
    assert retry_delay_s(1, SCHEDULE, retry_after=120.0, rand=lambda: 0.0) == 120.0
    assert retry_delay_s(1, SCHEDULE, retry_after=1.0, rand=lambda: 0.0) == 5.0  # never sooner than planned
    assert retry_delay_s(1, SCHEDULE, retry_after=10**9, rand=lambda: 0.0) == 86_400.0


ENDPOINT = WebhookEndpoint("we_1", "prj_1", "https://h.example/", ("key.revoked",), None, "whsec_x", "enabled", 0)


def _delivery(n: int, attempts: int = 0) -> Delivery:
    return Delivery(f"whd_{n}", f"evt_{n}", "key.revoked", "we_1", "prj_1", n, PENDING, attempts, {})


def _answer(code: int | None, at: int = 1_000, error: str | None = None) -> Answer:
    return Answer(at, 12, code, "{}" if code else None, error)


def test_a_success_clears_the_endpoint_and_a_failure_pauses_it_by_the_oldest_waiting_delivery() -> None:
    ok = plan_round(ENDPOINT, [_delivery(1)], [_answer(200)], 2_000, SCHEDULE, 5, rand=lambda: 0.0)
    assert (ok.attempts[0].delivery_status, ok.failing_since_ms, ok.paused_until_ms) == (DELIVERED, None, None)
    failing = plan_round(
        ENDPOINT, [_delivery(1, attempts=1), _delivery(2)], [_answer(500), _answer(None, error="timed out")], 2_000,
        SCHEDULE, 5, rand=lambda: 0.0,
    )  # fmt: skip
    assert [a.delivery_status for a in failing.attempts] == [PENDING, PENDING]
    assert failing.paused_until_ms == 2_000 + 300_000  # the oldest one's second delay
    assert failing.failing_since_ms == 1_000 and failing.disabled_reason is None


def test_a_delivery_out_of_attempts_fails_and_the_lane_goes_on() -> None:
    update = plan_round(ENDPOINT, [_delivery(1, attempts=3)], [_answer(502)], 5_000, SCHEDULE, 5)
    assert update.attempts[0].delivery_status == FAILED
    assert update.paused_until_ms is None  # nothing waits: the next delivery goes at once


def test_an_endpoint_failing_for_the_configured_days_is_disabled() -> None:
    since = 1_000_000
    stale = _with(ENDPOINT, failing_since_ms=since)
    still = plan_round(stale, [_delivery(1)], [_answer(500)], since + 4 * DAY_MS, SCHEDULE, 5)
    assert still.disabled_reason is None and still.failing_since_ms == since
    gone = plan_round(stale, [_delivery(1)], [_answer(500)], since + 5 * DAY_MS, SCHEDULE, 5)
    assert gone.disabled_reason is not None and gone.disabled_reason.startswith("every delivery failed since")
    assert disable_reason(None, 10**12, 5) is None


def _fields(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {name: getattr(endpoint, name) for name in endpoint.__slots__}  # type: ignore[attr-defined]


def _with(endpoint: WebhookEndpoint, **changes: Any) -> WebhookEndpoint:
    return WebhookEndpoint(**{**_fields(endpoint), **changes})


def test_the_previous_secret_signs_only_during_the_overlap() -> None:
    rotated = _with(ENDPOINT, secret="whsec_new", prev_secret="whsec_old", prev_secret_until_ms=5_000)
    assert rotated.signing_secrets(4_999) == ("whsec_new", "whsec_old")
    assert rotated.signing_secrets(5_000) == ("whsec_new",)


def test_the_body_carries_amounts_in_micro_units_and_credits() -> None:
    body = message.body("evt_1", "wallet.recharged", 1_700_000_000_123, {"amount_micro": 2_500_000, "ok": True})
    assert body == (
        b'{"id":"evt_1","object":"event","type":"wallet.recharged","created_at":1700000000,'
        b'"data":{"amount_micro":2500000,"ok":true,"amount":"2.5"}}'
    )


def test_signatures_verify_with_standardwebhooks_and_the_openai_sdk_and_fail_with_a_wrong_secret() -> None:
    secret, other = message.new_secret(), message.new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 24
    body = message.body("evt_x", "key.revoked", int(time.time() * 1000), {"key_id": "key_1"})
    headers = message.headers([secret], "evt_x", int(time.time()), body)
    assert headers["webhook-id"] == "evt_x" and headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers)["id"] == "evt_x"
    client = openai.OpenAI(api_key="sk-unused")
    client.webhooks.verify_signature(body, headers, secret=secret)
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)
    with pytest.raises(openai.InvalidWebhookSignatureError):
        client.webhooks.verify_signature(body, headers, secret=other)
    both = message.headers([other, secret], "evt_x", int(time.time()), body)
    assert len(both["webhook-signature"].split(" ")) == 2
    for each in (secret, other):
        Webhook(each).verify(body, both)
        client.webhooks.verify_signature(body, both, secret=each)


class _Recorder:
    """A MockTransport handler: answers from a script, records every request it was asked to send."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _reply(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> httpx.Response:
    """An answer streamed like one from the network (the sender reads only its first KiB)."""
    return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body))


def _post(recorder: _Recorder, addresses: tuple[str, ...] = ("93.184.216.34",)) -> Answer:
    sender = Sender(10, transport=lambda: httpx.MockTransport(recorder))
    where = Destination("https://billing.example.com/hooks", "https", "billing.example.com", 443, "/hooks", addresses)
    return asyncio.run(sender.post(where, {"webhook-id": "evt_1"}, b"{}", 0, time.monotonic()))


def test_the_request_goes_to_the_checked_address_with_the_name_in_host_and_sni() -> None:
    recorder = _Recorder(_reply(204))
    answer = _post(recorder)
    assert answer.ok and answer.status_code == 204
    sent = recorder.requests[0]
    assert sent.url.host == "93.184.216.34" and sent.url.path == "/hooks"
    assert sent.headers["host"] == "billing.example.com"
    assert sent.extensions["sni_hostname"] == "billing.example.com"


def test_a_redirect_is_a_failed_attempt_and_is_not_followed() -> None:
    recorder = _Recorder(_reply(302, headers={"location": "http://127.0.0.1:1/elsewhere"}))
    answer = _post(recorder)
    assert not answer.ok and answer.status_code == 302
    assert len(recorder.requests) == 1


def test_only_the_first_kib_of_the_answer_is_kept_and_retry_after_is_read() -> None:
    answer = _post(_Recorder(_reply(503, b"x" * 5000, {"retry-after": "7"})))
    assert answer.body == "x" * 1024 and answer.retry_after_s == 7.0


def test_a_refused_connection_tries_the_next_checked_address_and_errors_are_answers() -> None:
    recorder = _Recorder(httpx.ConnectError("refused"), _reply(200))
    assert _post(recorder, ("93.184.216.34", "93.184.216.35")).ok
    assert [r.url.host for r in recorder.requests] == ["93.184.216.34", "93.184.216.35"]
    timed_out = _post(_Recorder(httpx.ReadTimeout("slow")))
    assert not timed_out.ok and timed_out.error == "timed out after 10 s"
