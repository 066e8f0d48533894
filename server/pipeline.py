"""The one request path, top to bottom as plain calls:

    admit (IP net, key) → authorize (scopes, model) → limit (RPM/TPM) → reserve (budget, wallet)
    → record intent → route (targets, retries, fallbacks) → forward → meter → record outcome + settle.

Each step lives in its own module and knows nothing of HTTP. Handlers in api/ build a `Call`,
call `start` with their front door's dialect, then `serve_unary` or `open_stream`, and render the
result. The dialect decides pass-through or translation per provider; the path is the same. Fail closed: when the
outcome cannot be recorded the client gets 503, never an unmetered answer. Every reservation
resolves exactly once, in `settlement.record`, whichever way the call ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from server.admission import Ticket, admit, authorize, limit, reserve
from server.clock import now_ms
from server.dialects.base import Dialect
from server.errors import GatewayError, UpstreamError, metering_unavailable
from server.gateway import Gateway
from server.metering import charge_for, estimate_tokens
from server.money import credits_number
from server.routing import first_success
from server.settlement import record
from server.streaming.relay import StreamRelay
from server.types import Call, Caller, Charge, Outcome, Target, Usage

__all__ = ["OpenedStream", "Served", "admit", "open_stream", "serve_unary", "start"]


@dataclass(slots=True)
class Served:
    """A finished non-stream answer and what the edge needs for its headers."""

    body: dict[str, Any]
    target: Target
    depth: int
    charge: Charge


@dataclass(slots=True)
class OpenedStream:
    chunks: AsyncIterator[bytes]
    target: Target
    depth: int


def start(gw: Gateway, caller: Caller, call: Call, dialect: Dialect) -> Ticket:
    """Everything before forwarding; raises the documented 402/403/404/429 errors."""
    call.endpoint, call.endpoint_class = dialect.name, dialect.endpoint_class
    model = authorize(gw, caller, call, dialect.capability)
    max_output = dialect.max_output_tokens(call.body)
    admission = limit(gw, caller, call, max_output)
    hold = reserve(gw, caller, call, model, max_output)
    if not gw.store.healthy:
        gw.budgets.release(hold)
        raise metering_unavailable()
    gw.store.record_intent(caller, call)  # ordered before the outcome in the writer queue
    return Ticket(caller=caller, call=call, model=model, admission=admission, hold=hold, dialect=dialect)


async def _fail(gw: Gateway, ticket: Ticket, outcome: Outcome, exc: GatewayError) -> None:
    outcome.status = "upstream_failed" if isinstance(exc, UpstreamError) else "error"
    outcome.http_status = exc.status
    outcome.error_code = exc.code
    record(gw, ticket, outcome)  # no usage to protect; not awaited (the hold is released on commit)


def _meter(body: dict[str, Any], usage: Usage | None, ticket: Ticket) -> tuple[Usage, Charge]:
    if usage is None:  # the provider reported none: estimate from the request, and say so
        usage = Usage(input_tokens=estimate_tokens(ticket.call.body_bytes), estimated=True)
    charge = charge_for(usage, ticket.model.rates)
    ticket.dialect.add_cost(body, credits_number(charge.micro))
    return usage, charge


async def _route(gw: Gateway, ticket: Ticket, outcome: Outcome, attempt: Any) -> Any:
    """Try the model's targets; a failure (or a client gone before any answer) is recorded, unmetered."""
    try:
        return await first_success(gw, ticket.model.targets, attempt, outcome.attempts)
    except GatewayError as exc:
        await _fail(gw, ticket, outcome, exc)
        raise
    except BaseException:
        outcome.status, outcome.http_status = "client_disconnected", 499
        record(gw, ticket, outcome)
        raise


async def serve_unary(gw: Gateway, ticket: Ticket) -> Served:
    """One JSON answer in the front door's shape, metered before it is returned."""
    call = ticket.call
    outcome = Outcome(status="pending", http_status=0)
    depth, target, (body, reported) = await _route(
        gw, ticket, outcome, lambda p, m: ticket.dialect.unary(p, m, call.body)
    )
    usage, charge = _meter(body, reported, ticket)
    outcome.status, outcome.http_status, outcome.target = "ok", 200, target
    outcome.usage, outcome.charge = usage, charge
    try:
        await asyncio.shield(record(gw, ticket, outcome))
    except Exception as exc:
        raise metering_unavailable() from exc
    gw.latency.observe(call.model, now_ms() - call.started_ms)
    return Served(body=body, target=target, depth=depth, charge=charge)


async def open_stream(gw: Gateway, ticket: Ticket) -> OpenedStream:
    """Open the upstream stream and read its first event, so fallback happens before any byte is sent."""
    call = ticket.call
    outcome = Outcome(status="pending", http_status=0)

    async def open_and_peek(provider: Any, upstream_model: str) -> tuple[Any, AsyncIterator[Any], Any]:
        stream = await ticket.dialect.open(provider, upstream_model, call.body)
        events = stream.__aiter__()
        try:
            first = await anext(events)
        except StopAsyncIteration:
            await stream.aclose()
            raise UpstreamError(
                502, f"{provider.name} sent an empty stream", retryable=True, upstream_status="empty"
            ) from None
        except BaseException:
            await stream.aclose()
            raise
        return stream, events, first

    depth, target, (stream, events, first) = await _route(gw, ticket, outcome, open_and_peek)
    outcome.target = target

    async def finish(result: Outcome) -> None:
        try:
            await asyncio.shield(record(gw, ticket, result))
        except Exception as exc:
            raise metering_unavailable() from exc
        if result.status == "ok":
            gw.latency.observe(call.model, now_ms() - call.started_ms)

    relay = StreamRelay(
        stream=stream,
        events=events,
        first=first,
        adapter=ticket.dialect.adapter(call.body, gw.providers[target.provider]),
        model=ticket.model,
        input_chars=call.body_bytes,
        outcome=outcome,
        finish=finish,
        finish_nowait=lambda result: record(gw, ticket, result),
    )
    return OpenedStream(chunks=relay.run(), target=target, depth=depth)
