"""How a call ends: its Outcome is built here (in one place), recorded with its usage, ledger debit, hold
resolution and events in one transaction, and its reservation resolved exactly once.

The hold is resolved in memory when the closing is queued (settled at the actual cost, or released), so
the threshold events a spend crosses are computed before the write and committed with the usage row that
crossed them. If the write fails because the store cannot take writes, a closing with delivered content
(a stream the client already read) is kept and written as soon as the store recovers; one without (the
client gets 503) is undone in memory and recorded as a failure instead. Callbacks run on the future's
completion, not in the awaiting task, so a cancelled client cannot skip settlement. The call's metrics
(server/metrics.py) are counted here too, as the closing is queued.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Container
from dataclasses import dataclass, replace
from typing import Any

from server.budget import Budgets, Crossing, Hold
from server.clock import now_ms
from server.dialects.base import Dialect
from server.errors import METERING_UNAVAILABLE
from server.events.outbox import request_completed_event, threshold_event
from server.generation import Generation
from server.idempotency import Claim
from server.limits import Admission
from server.metering import Rates, charge
from server.metrics import Metrics
from server.request_facts import note_cost
from server.request_feed import RequestFeed
from server.snapshot import ModelEntry
from server.store.media_protocol import JobEnd
from server.store.protocol import Closing, Event, Intent, Store, StoreUnavailable
from server.types import Attempt, Call, Caller, Outcome, Target, Usage

log = logging.getLogger("gateway.settlement")

OK, ERROR, UPSTREAM_FAILED, DISCONNECTED = "ok", "error", "upstream_failed", "client_disconnected"
# Every status a request row can carry: pending until closed, interrupted when a crash closed it at restart.
STATUSES = (OK, ERROR, UPSTREAM_FAILED, DISCONNECTED, "interrupted", "pending")


@dataclass(slots=True)
class Ticket:
    """Everything admission granted a call; settlement resolves it exactly once."""

    caller: Caller
    call: Call
    model: ModelEntry
    dialect: Dialect
    admission: Admission
    hold: Hold
    intent: Intent
    intent_written: asyncio.Future[Any]
    generation: Generation  # the config the call started on; it finishes on it
    claim: Claim | None = None  # the Idempotency-Key this call answers, if any
    cache_status: str | None = None  # what the answer cache did for the call (HIT, MISS, BYPASS), once looked up
    ended: bool = False
    job: bool = False  # an asynchronous job: its request row is written with its closing, when it ends

    def end(self) -> None:
        """The call is over (answered, failed, or its stream closed): its generation may release providers."""
        if not self.ended:
            self.ended = True
            self.generation.leave()

    def conclude(
        self,
        attempts: list[Attempt],
        *,
        status: str,
        http_status: int,
        target: Target | None = None,
        usage: Usage | None = None,
        error_code: str | None = None,
    ) -> Outcome:
        """This call's Outcome: charged at its model's rates, with what the answer cache did for it."""
        return conclude(
            self.model.rates,
            attempts,
            status=status,
            http_status=http_status,
            target=target,
            usage=usage,
            error_code=error_code,
            cache_status=self.cache_status,
        )


@dataclass(slots=True, frozen=True)
class Answer:
    """What the client got, for an idempotent call: stored with the charge and replayed to a retry."""

    status: int
    headers: dict[str, str]
    stream: bool
    body: bytes


def conclude(
    rates: Rates,
    attempts: list[Attempt],
    *,
    status: str,
    http_status: int,
    target: Target | None = None,
    usage: Usage | None = None,
    error_code: str | None = None,
    cache_status: str | None = None,
) -> Outcome:
    """The one place an Outcome is built: its charge comes from its usage and the model's rates."""
    return Outcome(
        status=status,
        http_status=http_status,
        target=target,
        usage=usage,
        charge=charge(usage, rates) if usage is not None else None,
        error_code=error_code,
        attempts=attempts,
        ended_ms=now_ms(),
        cache_status=cache_status,
    )


def _events(crossings: list[Crossing], when_ms: int) -> tuple[Event, ...]:
    out = []
    for crossing in crossings:
        event_id, payload = threshold_event(crossing)
        out.append(Event(event_id, "usage.threshold_reached", crossing.project_id, payload, when_ms))
    return tuple(out)


def _with_lost_intent(closing: Closing, ticket: Ticket) -> Closing:
    """A closing that also writes the intent, when the intent's own write failed."""
    written = ticket.intent_written
    if closing.intent is None and written.done() and (written.cancelled() or written.exception() is not None):
        return replace(closing, intent=ticket.intent)
    return closing


class Settlement:
    def __init__(
        self,
        store: Store,
        budgets: Budgets,
        metrics: Metrics,
        completed_subscribers: Container[str] = frozenset(),
        feed: RequestFeed | None = None,
    ) -> None:
        self._store = store
        self._budgets = budgets
        self._metrics = metrics
        self.feed = feed or RequestFeed()  # followers of committed closings (usage tail)
        # Projects with a webhook endpoint for request.completed (kept current by the webhooks service):
        # only their closings carry that event, so a gateway nobody listens to pays one set lookup.
        self._completed_subscribers = completed_subscribers
        self._backlog: list[Closing] = []
        store.on_recovered(self.retry_backlog)

    @property
    def backlog(self) -> int:
        """Closings waiting for the store to take writes again."""
        return len(self._backlog)

    def close(
        self,
        ticket: Ticket,
        outcome: Outcome,
        *,
        delivered: bool = False,
        answer: Answer | None = None,
        job_end: JobEnd | None = None,
        events: tuple[Event, ...] = (),
    ) -> asyncio.Future[Any]:
        """Resolve the hold in memory and queue the closing write; `delivered` says the client already has
        the content (a stream), so the usage must be recorded even if the store refuses it for now; an
        `answer` to an idempotent call is stored in the same transaction as its charge; a job's end (its
        final state and result) and the `events` announcing it are written in that transaction too."""
        caller, hold, model = ticket.caller, ticket.hold, ticket.model
        assert caller.key is not None and caller.project is not None
        self._metrics.closed(model.name, ticket.call.endpoint, outcome, model.targets[0] if model.targets else None)
        # the token correction first: on Redis it rides in the settlement's round trip (server/state/connection.py)
        ticket.admission.settle_tokens(outcome.usage.total_tokens if outcome.usage is not None else 0)
        if outcome.charge is not None:
            note_cost(outcome.charge.micro)  # for the access log line
            crossings = self._budgets.settle(
                hold,
                outcome.charge.micro,
                project_budget=caller.project.monthly_budget_micro,
                key_budget=caller.key.scopes.monthly_budget_micro,
                now_ms=outcome.ended_ms,
            )
            closing = Closing(caller, ticket.call, outcome, hold.id, "settled", _events(crossings, outcome.ended_ms))
        else:
            self._budgets.release(hold)
            closing = Closing(caller, ticket.call, outcome, hold.id, "released")
        if ticket.claim is not None and answer is not None and outcome.status == OK:
            record = ticket.claim.record(
                ticket.call.request_id, answer.status, answer.headers, answer.stream, answer.body, outcome.ended_ms
            )
            closing = replace(closing, idempotency=record)
        if caller.project_id in self._completed_subscribers:
            closing = replace(closing, events=(*closing.events, request_completed_event(caller, ticket.call, outcome)))
        if ticket.job:
            closing = replace(closing, intent=ticket.intent, job_end=job_end, events=(*closing.events, *events))
        closing = _with_lost_intent(closing, ticket)
        future = self._store.record_closing(closing)
        future.add_done_callback(lambda done: self._after(done, closing, ticket, delivered))
        return future

    def close_session(
        self, intent: Intent, intent_written: asyncio.Future[Any], outcome: Outcome
    ) -> asyncio.Future[Any]:
        """The closing of a realtime session's own row: its outcome only (it holds nothing and carries no
        usage: each of its responses closed itself, with its hold, usage and debit, through `close`). Kept
        and written later if the store refuses it now, like a stream's."""
        caller, call = intent.caller, intent.call
        closing = Closing(caller, call, outcome, None, "released")
        if caller.project_id in self._completed_subscribers:
            closing = replace(closing, events=(request_completed_event(caller, call, outcome),))
        lost = intent_written.done() and (intent_written.cancelled() or intent_written.exception() is not None)
        if lost:
            closing = replace(closing, intent=intent)
        future = self._store.record_closing(closing)
        future.add_done_callback(lambda done: self._retry_failed(done, closing))
        return future

    def _after(self, done: asyncio.Future[Any], closing: Closing, ticket: Ticket, delivered: bool) -> None:
        error = done.exception() if not done.cancelled() else asyncio.CancelledError()
        if error is None:
            self.feed.publish(closing)
            return
        closing, hold = _with_lost_intent(closing, ticket), ticket.hold
        request_id = closing.call.request_id
        if not isinstance(error, StoreUnavailable):
            log.error("outcome of %s not recorded: %r", request_id, error)
            return
        if delivered:
            log.error("outcome of %s not recorded (%s); kept until the store recovers", request_id, error)
            self._backlog.append(closing)
            return
        outcome = closing.outcome
        if outcome.charge is not None:
            self._budgets.unspend(hold, outcome.charge.micro)
        failed = replace(
            outcome, status=ERROR, http_status=503, error_code=METERING_UNAVAILABLE.code, usage=None, charge=None
        )
        self._backlog.append(replace(closing, outcome=failed, hold_status="released", events=()))

    def retry_backlog(self) -> None:
        """Write what the store refused while it could not take writes (called when it recovers)."""
        waiting, self._backlog = self._backlog, []
        for closing in waiting:
            future = self._store.record_closing(closing)
            future.add_done_callback(lambda done, c=closing: self._retry_failed(done, c))

    def _retry_failed(self, done: asyncio.Future[Any], closing: Closing) -> None:
        error = done.exception() if not done.cancelled() else asyncio.CancelledError()
        if error is None:
            self.feed.publish(closing)
        elif isinstance(error, StoreUnavailable):
            self._backlog.append(closing)
        else:
            log.error("outcome of %s not recorded on retry: %r", closing.call.request_id, error)
