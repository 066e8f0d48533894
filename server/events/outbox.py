"""Outbox events: ids derived from their source so a replay never enqueues an event twice."""

from __future__ import annotations

from typing import Any

from server.budget import Crossing
from server.clock import now_ms


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
