"""The one request path, top to bottom as plain calls:

    authenticate → authorize → record intent → route (targets, fallbacks) → forward → meter → record.

Each step lives in its own module and knows nothing of HTTP. Handlers in api/ build a `Call`,
call one of the `serve_*` functions here, and render the result. Fail closed: when the outcome
cannot be recorded the client gets 503, never an unmetered answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from server.clock import now_ms
from server.errors import GatewayError, UpstreamError, bad_request, metering_unavailable, model_not_found
from server.gateway import Gateway
from server.keys import authenticate
from server.metering import charge_for, estimate_tokens, message_chars, usage_from_openai
from server.money import credits_number
from server.routing import first_success
from server.snapshot import ModelEntry
from server.streaming.relay import StreamRelay
from server.types import Call, Caller, Charge, Outcome, Target, Usage


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


def admit(gw: Gateway, secret: str | None, client_ip: str) -> Caller:
    """Authenticate the presented key into a Caller."""
    entry = authenticate(gw.snapshot, secret, now_ms())
    return Caller(project_id=entry.project_id, key_id=entry.id, client_ip=client_ip)


def resolve_model(gw: Gateway, call: Call, capability: str) -> ModelEntry:
    model = gw.snapshot.models.get(call.model)
    if model is None:
        raise model_not_found(call.model)
    if capability not in model.capabilities:
        raise bad_request(f"The model '{call.model}' does not support {capability}.", "model_not_supported", "model")
    return model


def _begin(gw: Gateway, caller: Caller, call: Call) -> None:
    if not gw.store.healthy:
        raise metering_unavailable()
    gw.store.record_intent(caller, call)  # ordered before the outcome in the writer queue


async def _record(gw: Gateway, caller: Caller, call: Call, outcome: Outcome) -> None:
    outcome.ended_ms = now_ms()
    try:
        await gw.store.record_outcome(caller, call, outcome)
    except Exception as exc:
        raise metering_unavailable() from exc


async def _fail(gw: Gateway, caller: Caller, call: Call, outcome: Outcome, exc: GatewayError) -> None:
    outcome.status = "upstream_failed" if isinstance(exc, UpstreamError) else "error"
    outcome.http_status = exc.status
    outcome.error_code = exc.code
    outcome.ended_ms = now_ms()
    gw.store.record_outcome(caller, call, outcome)  # no usage to protect; not awaited


def _meter(body: dict[str, Any], call: Call, model: ModelEntry) -> tuple[Usage, Charge]:
    usage = usage_from_openai(body.get("usage"))
    if usage is None:
        usage = Usage(input_tokens=estimate_tokens(message_chars(call.body.get("messages"))), estimated=True)
        body["usage"] = {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": 0,
            "total_tokens": usage.input_tokens,
        }
    charge = charge_for(usage, model.rates)
    body["usage"]["cost"] = credits_number(charge.micro)
    return usage, charge


async def serve_unary(gw: Gateway, caller: Caller, call: Call, capability: str) -> Served:
    """Chat (non-stream) and embeddings: one JSON answer, metered before it is returned."""
    model = resolve_model(gw, call, capability)
    _begin(gw, caller, call)
    outcome = Outcome(status="pending", http_status=0)
    method = "chat" if capability == "chat" else "embeddings"
    try:
        depth, target, body = await first_success(
            gw.providers, model.targets, lambda p, m: getattr(p, method)(m, call.body), outcome.attempts
        )
    except GatewayError as exc:
        await _fail(gw, caller, call, outcome, exc)
        raise
    usage, charge = _meter(body, call, model)
    outcome.status, outcome.http_status, outcome.target = "ok", 200, target
    outcome.usage, outcome.charge = usage, charge
    await _record(gw, caller, call, outcome)
    gw.latency.observe(call.model, now_ms() - call.started_ms)
    return Served(body=body, target=target, depth=depth, charge=charge)


async def open_stream(gw: Gateway, caller: Caller, call: Call) -> OpenedStream:
    """Open the upstream stream and read its first event, so fallback happens before any byte is sent."""
    model = resolve_model(gw, call, "chat")
    _begin(gw, caller, call)
    outcome = Outcome(status="pending", http_status=0)

    async def open_and_peek(
        provider: Any, upstream_model: str
    ) -> tuple[Any, AsyncIterator[dict[str, Any]], dict[str, Any]]:
        stream = await provider.chat_stream(upstream_model, call.body)
        events = stream.__aiter__()
        try:
            first = await anext(events)
        except StopAsyncIteration:
            raise UpstreamError(
                502, f"{provider.name} sent an empty stream", retryable=True, upstream_status="empty"
            ) from None
        except BaseException:
            await stream.aclose()
            raise
        return stream, events, first

    try:
        depth, target, (stream, events, first) = await first_success(
            gw.providers, model.targets, open_and_peek, outcome.attempts
        )
    except GatewayError as exc:
        await _fail(gw, caller, call, outcome, exc)
        raise
    outcome.target = target
    options = call.body.get("stream_options")
    include_usage = bool(isinstance(options, dict) and options.get("include_usage"))

    async def finish(result: Outcome) -> None:
        await _record(gw, caller, call, result)
        if result.status == "ok":
            gw.latency.observe(call.model, now_ms() - call.started_ms)

    relay = StreamRelay(
        stream=stream,
        events=events,
        first=first,
        include_usage=include_usage,
        model=model,
        input_chars=message_chars(call.body.get("messages")),
        outcome=outcome,
        finish=finish,
        finish_nowait=lambda result: _record_nowait(gw, caller, call, result),
    )
    return OpenedStream(chunks=relay.run(), target=target, depth=depth)


def _record_nowait(gw: Gateway, caller: Caller, call: Call, outcome: Outcome) -> None:
    outcome.ended_ms = now_ms()
    gw.store.record_outcome(caller, call, outcome)
