"""Outbox events: ids derived from their source so a replay never enqueues an event twice.

Each event is written in the transaction of the fact it announces (the ledger credit, the revocation,
the usage row); webhook deliveries fan out from it in that same transaction (server/webhooks).
"""

from __future__ import annotations

from typing import Any

from server.budget import Crossing
from server.clock import now_ms
from server.store.protocol import Event
from server.types import Call, Caller, Outcome, ended_request

# What a webhook endpoint may subscribe to. request.completed is opt-in (one per request: written only
# for projects with an endpoint that subscribes); request.rate_limited is sampled. job.completed and
# job.failed are reserved for asynchronous jobs (video, music): `job_event` below builds them, to be
# written in the transaction that records the job's end once jobs exist.
EVENT_TYPES = (
    "wallet.recharged",
    "invoice.paid",
    "key.revoked",
    "usage.threshold_reached",
    "request.completed",
    "request.rate_limited",
    "job.completed",
    "job.failed",
)
REQUEST_COMPLETED = "request.completed"


class RateLimitedSampler:
    """At most one request.rate_limited event per key (or IP) per interval, not one per request under attack."""

    def __init__(self, interval_s: int) -> None:
        self._interval_ms = interval_s * 1000
        self._last: dict[str, int] = {}

    def due(self, subject: str, when_ms: int) -> bool:
        last = self._last.get(subject)
        if last is not None and when_ms - last < self._interval_ms:
            return False
        if len(self._last) > 100_000:
            self._last.clear()
        self._last[subject] = when_ms
        return True


def threshold_event(crossing: Crossing) -> tuple[str, dict[str, Any]]:
    event_id = f"evt_threshold_{crossing.scope}_{crossing.scope_id}_{crossing.month}_{crossing.percent}"
    return event_id, {
        "scope": crossing.scope,
        "id": crossing.scope_id,
        "project_id": crossing.project_id,
        "percent": crossing.percent,
        "month": crossing.month,
        "budget_micro": crossing.budget_micro,
        "spent_micro": crossing.spent_micro,
    }


def key_revoked_event(key_id: str, project_id: str, revoked_ms: int) -> tuple[str, dict[str, Any]]:
    return f"evt_key_revoked_{key_id}", {"key_id": key_id, "project_id": project_id, "revoked_ms": revoked_ms}


def rate_limited_event(subject: str, project_id: str | None, message: str) -> tuple[str, dict[str, Any]]:
    when = now_ms()
    return f"evt_rate_limited_{subject}_{when}", {
        "subject": subject,
        "project_id": project_id,
        "message": message,
        "at_ms": when,
    }


def wallet_recharged_event(
    project_id: str, amount_micro: int, source: str, source_id: str, when_ms: int, **extra: Any
) -> Event:
    """A wallet credit (a Stripe top-up or an operator's adjustment), one event per ledger source."""
    payload = {"project_id": project_id, "amount_micro": amount_micro, "source": source, **extra}
    return Event(f"evt_recharged_{source_id}", "wallet.recharged", project_id, payload, when_ms)


def request_completed_event(caller: Caller, call: Call, outcome: Outcome) -> Event:
    """One request's end: who, which model, how it ended, its tokens and cost."""
    payload = ended_request(caller, call, outcome)
    event_id = f"evt_request_completed_{call.request_id}"
    return Event(event_id, REQUEST_COMPLETED, caller.project_id, payload, outcome.ended_ms)


def job_event(job_id: str, project_id: str, status: str, when_ms: int, **facts: Any) -> Event:
    """job.completed or job.failed for an asynchronous job (the hook for the multimodal jobs: write it with
    the job's final row and its hold's resolution; `facts` carries model, result or error, cost_micro)."""
    kind = "job.completed" if status == "completed" else "job.failed"
    payload = {"job_id": job_id, "project_id": project_id, "status": status, **facts}
    return Event(f"evt_{kind.replace('.', '_')}_{job_id}", kind, project_id, payload, when_ms)
