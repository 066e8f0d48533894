"""What one HTTP request turned out to be (its key's display prefix, the model, the charge), noted by
the steps that learn it, for the access log line written when the response ends.

A context variable set by the access-log layer for the request's task and filled in place; the
steps below it only call `note_*`. Outside a request (no access log, tests calling steps directly)
the notes go nowhere. Never holds a secret: the key's display prefix is what `keys list` shows.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(slots=True)
class RequestFacts:
    key_prefix: str | None = None
    model: str | None = None
    cost_micro: int | None = None


CURRENT: ContextVar[RequestFacts | None] = ContextVar("gateway_request_facts", default=None)
REQUEST_ID: ContextVar[str | None] = ContextVar("gateway_request_id", default=None)  # for log lines


def note_key(prefix: str) -> None:
    facts = CURRENT.get()
    if facts is not None:
        facts.key_prefix = prefix


def note_model(model: str) -> None:
    facts = CURRENT.get()
    if facts is not None:
        facts.model = model


def note_cost(micro: int) -> None:
    facts = CURRENT.get()
    if facts is not None:
        facts.cost_micro = micro
