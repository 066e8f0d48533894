"""Record a call's outcome and resolve its reservation exactly once, when the commit lands.

The outcome (request row, usage row, ledger debit) is queued to the writer; when its group commits,
the hold becomes spend at the actual cost (or is released if there was no usage or the write
failed), the TPM estimate is corrected to the actual tokens, and budget thresholds crossed for the
first time this month are queued to the outbox. Running on the future's completion (not in the
awaiting task) means a cancelled client cannot skip settlement.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from server.admission import Ticket
from server.clock import now_ms
from server.events.outbox import threshold_event
from server.gateway import Gateway
from server.request_facts import note_cost
from server.types import Outcome

log = logging.getLogger("gateway.settlement")


def record(gw: Gateway, ticket: Ticket, outcome: Outcome) -> asyncio.Future[Any]:
    outcome.ended_ms = now_ms()
    if outcome.charge is not None:
        note_cost(outcome.charge.micro)  # for the access log line
    future = gw.store.record_outcome(ticket.caller, ticket.call, outcome)

    def settle(done: asyncio.Future[Any]) -> None:
        failed = done.cancelled() or done.exception() is not None
        if failed or outcome.charge is None or outcome.usage is None:
            gw.budgets.release(ticket.hold)
            ticket.admission.settle_tokens(0 if failed or outcome.usage is None else outcome.usage.total_tokens)
            if failed:
                log.error("outcome of %s not recorded: %s", ticket.call.request_id, done.exception())
            return
        caller = ticket.caller
        assert caller.key is not None and caller.project is not None
        crossings = gw.budgets.settle(
            ticket.hold,
            outcome.charge.micro,
            project_budget=caller.project.monthly_budget_micro,
            key_budget=caller.key.scopes.monthly_budget_micro,
            now_ms=outcome.ended_ms,
        )
        ticket.admission.settle_tokens(outcome.usage.total_tokens)
        for crossing in crossings:
            event_id, payload = threshold_event(crossing)
            gw.store.add_event(event_id, "usage.threshold_reached", crossing.project_id, payload, outcome.ended_ms)

    future.add_done_callback(settle)
    return future
