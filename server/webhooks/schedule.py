"""When to try a webhook delivery again, and when to give up on it or on its endpoint: pure rules.

A failed attempt (anything but 2xx, a timeout, a refused address) is retried after the next delay of
`[webhooks] retry_schedule_s` (default about three days over ten attempts, like Stripe's), made up to
`JITTER` longer at random so that many deliveries failing together do not retry together; a
`Retry-After` on 429 or 503 is honoured (never retried sooner, at most a day later). Past the last delay
the delivery fails for good. While a delivery waits for its retry its whole endpoint waits (deliveries
go out in event order), and an endpoint whose attempts have failed for `disable_after_days` with no
success between is disabled.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from server.store.webhook_protocol import (
    DELIVERED,
    FAILED,
    PENDING,
    AttemptRecord,
    Delivery,
    LaneUpdate,
    WebhookEndpoint,
)
from server.webhooks.sender import Answer

JITTER = 0.2  # a retry waits up to 20 % longer than its scheduled delay
MAX_RETRY_AFTER_S = 86_400.0
DAY_MS = 86_400_000


def retry_delay_s(
    attempts_made: int,
    schedule: Sequence[float],
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """The wait before the next attempt after `attempts_made` failed ones, or None when none is left."""
    if attempts_made > len(schedule):
        return None
    delay = schedule[attempts_made - 1] * (1 + JITTER * rand())
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
    return delay


def disable_reason(failing_since_ms: int | None, now_ms: int, disable_after_days: float) -> str | None:
    """Why an endpoint failing since `failing_since_ms` is disabled now, or None while it may keep trying."""
    if failing_since_ms is None or now_ms - failing_since_ms < disable_after_days * DAY_MS:
        return None
    since = datetime.fromtimestamp(failing_since_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"every delivery failed since {since}"


def plan_round(
    endpoint: WebhookEndpoint,
    deliveries: Sequence[Delivery],
    answers: Sequence[Answer],
    now_ms: int,
    schedule: Sequence[float],
    disable_after_days: float,
    rand: Callable[[], float] = random.random,
) -> LaneUpdate:
    """What a round of attempts (one per delivery, in event order) makes of the deliveries and the endpoint."""
    records: list[AttemptRecord] = []
    pause_s: float | None = None
    for delivery, answer in zip(deliveries, answers, strict=True):
        status = DELIVERED
        if not answer.ok:
            delay = retry_delay_s(delivery.attempts + 1, schedule, answer.retry_after_s, rand)
            status = FAILED if delay is None else PENDING
            if delay is not None and pause_s is None:
                pause_s = delay  # the oldest delivery left waiting holds its endpoint back
        records.append(
            AttemptRecord(
                delivery_id=delivery.id,
                started_ms=answer.started_ms,
                latency_ms=answer.latency_ms,
                ok=answer.ok,
                response_code=answer.status_code,
                response_body=answer.body,
                error=answer.error,
                delivery_status=status,
            )
        )
    failed = [a for a in answers if not a.ok]
    if not failed:
        return LaneUpdate(endpoint.id, tuple(records), None, None, None, now_ms)
    first_failure = min(a.started_ms for a in failed)
    succeeded = len(failed) < len(answers)
    since = first_failure if succeeded or endpoint.failing_since_ms is None else endpoint.failing_since_ms
    paused = None if pause_s is None else now_ms + int(pause_s * 1000)
    return LaneUpdate(
        endpoint.id, tuple(records), since, paused, disable_reason(since, now_ms, disable_after_days), now_ms
    )
