"""The one request path, top to bottom as plain calls:

    admit (IP net, key) → authorize (scopes, model) → declare (caps, choices) → limit (RPM/TPM)
    → reserve (worst case: budget, wallet) → record intent → look up the answer cache → route (targets,
    retries, fallbacks) → forward (what the cache did not serve) → meter → close (outcome + usage + debit +
    hold + events, one transaction).

Each step lives in its own module and knows nothing of HTTP. Handlers in api/ build a `Call`, call
`start` with their front door's dialect, then `serve_unary` or `open_stream`, and render the result.
The dialect decides pass-through or translation per provider; the path is the same.

Fail closed: a store that cannot take writes refuses the call (503) before anything is forwarded; an
outcome that cannot be recorded is a 503, never an unmetered answer; a stream's intent is durable
before its first byte is sent. Every reservation resolves exactly once, in `Settlement.close`,
whichever way the call ends (an internal error is recorded as one, not as a disconnect).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from server.admission import Gatekeeper
from server.budget import Budgets, Hold
from server.cache_policy import Caching
from server.capabilities import endpoint_class
from server.clock import now_ms
from server.dialects.base import Dialect
from server.errors import METERING_UNAVAILABLE, GatewayError, UpstreamError
from server.generation import Generations
from server.idempotency import Claim
from server.latency import LatencyBands
from server.limits import Admission
from server.metering import estimate, output_bound, reservation, tokens_in, worst_case
from server.metrics import Metrics, bounded_model
from server.money import format_credits
from server.request_log import BodyLog
from server.routing import Lease
from server.settlement import DISCONNECTED, ERROR, OK, UPSTREAM_FAILED, Answer, Settlement, Ticket
from server.store.protocol import HOLD_JOB, HOLD_REQUEST, HoldRecord, Intent, Store
from server.streaming.relay import LastFrames, OpenStreams, StreamRelay, Transcript
from server.types import Attempt, Call, Caller, Charge, Outcome, Target, Usage

__all__ = ["Binary", "OpenedStream", "RequestPath", "Served"]


@dataclass(slots=True)
class Served:
    """A finished non-stream answer (JSON bytes, or what the dialect renders) and what the edge needs for
    its headers."""

    content: bytes
    target: Target
    depth: int
    charge: Charge
    headers: dict[str, str]
    media_type: str = "application/json"


@dataclass(slots=True)
class Binary:
    """An answer of bytes (speech audio), already metered and recorded, streamed as it arrives."""

    chunks: AsyncIterator[bytes]
    media_type: str
    headers: dict[str, str]


@dataclass(slots=True)
class OpenedStream:
    chunks: AsyncIterator[bytes]
    target: Target
    depth: int
    headers: dict[str, str]


@dataclass
class RequestPath:
    """The collaborators the request path needs, and nothing else."""

    gatekeeper: Gatekeeper
    budgets: Budgets
    store: Store
    generations: Generations  # the config-driven parts (models, providers, router, limits); a call keeps its own
    settlement: Settlement
    latency: LatencyBands
    streams: OpenStreams
    bodies: BodyLog
    caching: Caching
    metrics: Metrics

    def admit(self, secret: str | None, client_ip: str) -> Caller:
        """The caller a key makes; a refusal (401, 403, the per-IP 429) is counted by its code."""
        try:
            return self.gatekeeper.admit(secret, client_ip)
        except GatewayError as exc:
            self.metrics.refused(exc.code)
            raise

    def start(
        self,
        caller: Caller,
        call: Call,
        dialect: Dialect,
        claim: Claim | None = None,
        *,
        job: bool = False,
        forced: bool = False,
    ) -> Ticket:
        """Everything before forwarding; raises the documented 400/402/403/404/429/503 errors (counted as
        refusals, with the model's name only when it is a configured one). A `job` (video, music) holds its
        reservation as a durable job hold, and its request row is written when it ends (with its outcome),
        not now: the job outlives this call and any restart. `forced`: a call the upstream already started
        on its own (a realtime response created by server VAD) is held and metered whatever the limits and
        budgets say; its caller cancels it at once."""
        try:
            return self._start(caller, call, dialect, claim, job, forced)
        except GatewayError as exc:
            model = bounded_model(call.model, self.generations.current.models)
            self.metrics.refused(exc.code, model, dialect.name)
            raise

    def _start(
        self, caller: Caller, call: Call, dialect: Dialect, claim: Claim | None, job: bool, forced: bool
    ) -> Ticket:
        assert caller.key is not None and caller.project is not None
        generation = self.generations.current
        call.endpoint = dialect.name
        klass = endpoint_class(dialect.capability)
        model = self.gatekeeper.authorize(caller, call, dialect.capability, klass)
        declared = dialect.declare(call.body)
        default_cap = min(generation.limits.default_max_output_tokens, model.context_window)
        if declared.output_cap is None:
            dialect.cap_output(call.body, default_cap)  # the reservation's bound is the upstream's bound too
        tokens = tokens_in(call.body_bytes) + output_bound(declared, default_cap)
        worst = reservation(worst_case(call.body_bytes, declared, default_cap), model.rates)
        admission, hold = self._limit_and_reserve(caller, call, klass, tokens, worst.micro, forced)
        if not self.store.healthy:  # a locked database or a full disk: refuse before paying upstream
            self.budgets.release(hold)
            admission.settle_tokens(0)
            error = METERING_UNAVAILABLE()
            error.headers = {**admission.headers, "retry-after": "1"}
            raise error
        kind = HOLD_JOB if job else HOLD_REQUEST
        record = HoldRecord(hold.id, hold.project_id, hold.key_id, hold.micro, hold.wallet, model.rates.card, kind)
        intent = Intent(caller, call, record)
        if job:
            written: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            written.set_result(None)  # written with the job's own row, then again with its end
        else:
            written = self.store.record_intent(intent)  # ordered before the closing in the writer queue
            written.add_done_callback(lambda done: done.cancelled() or done.exception())
        generation.enter()  # left in `Ticket.end`, once the call is over (its providers stay open until then)
        return Ticket(caller, call, model, dialect, admission, hold, intent, written, generation, claim, job=job)

    def _limit_and_reserve(
        self, caller: Caller, call: Call, klass: str, tokens: int, worst_micro: int, forced: bool
    ) -> tuple[Admission, Hold]:
        """The rate limits, then the reservation of the worst case. On Redis one script does both (one round
        trip, server/state/admission.py); in memory, two steps on the loop. A `forced` call is held unchecked."""
        assert caller.key is not None and caller.project is not None
        budgets = self.budgets
        if forced:
            hold = Hold(caller.project_id, caller.key_id, worst_micro, caller.project.prepaid, call.request_id)
            return Admission(), budgets.restore(hold)
        terms = {
            "project_budget": caller.project.monthly_budget_micro,
            "key_budget": caller.key.scopes.monthly_budget_micro,
            "prepaid": caller.project.prepaid,
            "now_ms": now_ms(),
            "hold_id": call.request_id,
        }
        joint = getattr(budgets, "limit_and_reserve", None)  # SharedBudgets (Redis) only
        if joint is not None:
            checks = self.gatekeeper.checks(caller, klass, tokens)
            try:
                granted: tuple[Admission, Hold] = joint(
                    self.gatekeeper.limiter, checks, caller.project_id, caller.key_id, worst_micro, **terms
                )
                return granted
            except GatewayError as exc:
                self.gatekeeper.refused(caller, exc, call)
                raise
        admission = self.gatekeeper.limit(caller, klass, tokens, call)
        try:
            return admission, budgets.reserve(caller.project_id, caller.key_id, worst_micro, **terms)
        except GatewayError as exc:
            admission.settle_tokens(0)
            exc.headers = {**admission.headers, **exc.headers}
            raise

    async def serve_unary(self, ticket: Ticket) -> Served:
        """One JSON answer in the front door's shape, metered and recorded before it is returned."""
        try:
            return await self._serve_unary(ticket)
        finally:
            ticket.end()

    async def _serve_unary(self, ticket: Ticket) -> Served:
        call, dialect = ticket.call, ticket.dialect
        attempts: list[Attempt] = []
        lookup = self.caching.lookup(ticket.caller.project_id, call, ticket.model, dialect.name)
        ticket.cache_status = lookup.status
        if lookup.status is not None:
            self.metrics.cache_lookup(lookup.status)
        cached = lookup.served()
        if cached is not None:  # no upstream call, no attempt; billed like any other answer, at the cache rate
            depth, target, body, reported = 0, cached.target, cached.answer, cached.usage
        else:
            depth, target, (body, reported), lease = await self._route(
                ticket, attempts, lambda p, m: lookup.unary(dialect, p, m, call.body)
            )
            lease.release()
        try:
            usage = reported or estimate(call.body_bytes, dialect.delivered_chars(body))
            if cached is None and depth == 0:
                lookup.keep(body, usage, target)
            outcome = ticket.conclude(attempts, status=OK, http_status=200, target=target, usage=usage)
            assert outcome.charge is not None
            dialect.present(body, usage, outcome.charge.micro)
            render = getattr(dialect, "render", None)  # a dialect whose answers are not always JSON (transcripts)
            content, media_type = render(body) if render is not None else (orjson.dumps(body), "application/json")
        except Exception:
            self._internal_error(ticket, attempts)
            raise
        headers = {
            **ticket.admission.headers,
            **served_headers(call, target, depth, ticket.cache_status),
            **money_headers(ticket, outcome.charge.micro),
        }
        if media_type != "application/json":
            headers["content-type"] = media_type
        answer = Answer(200, headers, False, content) if ticket.claim is not None else None
        try:
            await asyncio.shield(self.settlement.close(ticket, outcome, answer=answer))
        except Exception as exc:
            raise METERING_UNAVAILABLE() from exc
        if cached is None:  # the model's latency band measures upstream calls, not the cache
            self.latency.observe(call.model, now_ms() - call.started_ms)
        self.metrics.answered(call.endpoint, False, call.arrived, attempts)
        logged = getattr(dialect, "logged", None)  # a dialect whose answers are too big to log whole (images)
        self.bodies.record(call, outcome.ended_ms, logged(body) if logged is not None else content, OK)
        return Served(
            content=content, target=target, depth=depth, charge=outcome.charge, headers=headers, media_type=media_type
        )

    async def serve_binary(self, ticket: Ticket) -> Binary:
        """An answer of bytes (speech): opened upstream with its first chunk read (so fallback happens before
        anything is sent), metered at what the request declared (the provider bills the input, however much
        of the audio the client reads), recorded, then streamed as it arrives."""
        call, dialect = ticket.call, ticket.dialect
        attempts: list[Attempt] = []
        try:
            depth, target, (stream, first, usage), lease = await self._route(
                ticket, attempts, lambda p, m: dialect.unary(p, m, call.body)
            )
        except BaseException:
            ticket.end()
            raise
        outcome = ticket.conclude(attempts, status=OK, http_status=200, target=target, usage=usage)
        assert outcome.charge is not None
        try:
            await asyncio.shield(self.settlement.close(ticket, outcome))
        except Exception as exc:
            lease.release()
            ticket.end()
            await stream.aclose()
            raise METERING_UNAVAILABLE() from exc
        self.latency.observe(call.model, now_ms() - call.started_ms)
        self.metrics.answered(call.endpoint, True, call.arrived, attempts)
        self.bodies.record(call, outcome.ended_ms, {"content_type": stream.content_type, "streamed": True}, OK)
        headers = {
            **ticket.admission.headers,
            **served_headers(call, target, depth, ticket.cache_status),
            "x-credits-used": format_credits(outcome.charge.micro),
        }

        async def chunks() -> AsyncIterator[bytes]:
            try:
                if first:
                    yield first
                async for piece in stream:
                    yield piece
            finally:
                lease.release()
                ticket.end()
                await stream.aclose()

        return Binary(chunks(), stream.content_type, headers)

    async def open_stream(self, ticket: Ticket) -> OpenedStream:
        """Open the upstream stream and read its first event, so fallback happens before any byte is sent;
        the intent is durable before the first byte goes out. The call ends when its relay does."""
        try:
            return await self._open_stream(ticket)
        except BaseException:
            ticket.end()
            raise

    async def _open_stream(self, ticket: Ticket) -> OpenedStream:
        call, dialect = ticket.call, ticket.dialect
        attempts: list[Attempt] = []
        ticket.cache_status = self.caching.lookup(ticket.caller.project_id, call, ticket.model, dialect.name).status
        if ticket.cache_status is not None:
            self.metrics.cache_lookup(ticket.cache_status)

        async def open_and_peek(provider: Any, upstream_model: str) -> tuple[Any, AsyncIterator[Any], Any]:
            stream = await dialect.open(provider, upstream_model, call.body)
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

        depth, target, (stream, events, first), lease = await self._route(ticket, attempts, open_and_peek)
        try:
            await asyncio.shield(ticket.intent_written)
        except Exception as exc:
            lease.release()
            await stream.aclose()
            self.budgets.release(ticket.hold)
            ticket.admission.settle_tokens(0)
            raise METERING_UNAVAILABLE() from exc
        generation = ticket.generation
        provider = generation.provider_settings[target.provider]
        headers = {**ticket.admission.headers, **served_headers(call, target, depth, ticket.cache_status)}
        relay = StreamRelay(
            stream=stream,
            events=events,
            first=first,
            adapter=dialect.adapter(call.body, generation.providers[target.provider]),
            input_bytes=call.body_bytes,
            sink=_Sink(self, ticket, attempts, target, lease, headers),
            provider=target.provider,
            silence_s=provider.timeouts.first_byte,
            deadline=time.monotonic() + provider.timeouts.total,
            drain=provider.on_disconnect == "drain",
            streams=self.streams,
        )
        self.metrics.answered(call.endpoint, True, call.arrived, attempts)
        return OpenedStream(chunks=relay.run(), target=target, depth=depth, headers=headers)

    async def _route(self, ticket: Ticket, attempts: list[Attempt], attempt: Any) -> tuple[int, Target, Any, Lease]:
        """Try the model's targets; a failure (or a client gone before any answer) is recorded, unmetered."""
        try:
            router = ticket.generation.router
            pin = ticket.call.pin
            targets = (pin,) if pin is not None else ticket.model.targets
            return await router.first_success(targets, attempt, attempts, ticket.caller.project_id)
        except GatewayError as exc:
            status = UPSTREAM_FAILED if isinstance(exc, UpstreamError) else ERROR
            outcome = ticket.conclude(attempts, status=status, http_status=exc.status, error_code=exc.code)
            self.settlement.close(ticket, outcome)  # no usage to protect; not awaited
            self.bodies.record(ticket.call, outcome.ended_ms, exc.openai_body(), status)
            exc.headers = {**ticket.admission.headers, **exc.headers}
            raise
        except asyncio.CancelledError:
            outcome = ticket.conclude(attempts, status=DISCONNECTED, http_status=499, error_code="client_disconnected")
            self.settlement.close(ticket, outcome)
            raise
        except BaseException:
            self._internal_error(ticket, attempts)
            raise

    async def complete(self, ticket: Ticket, usage: Usage | None, answer: Any = None) -> Charge | None:
        """Close a call the gateway served itself (no upstream: a stored file, say), metered like any other;
        without a usage (a listing) its hold is released and nothing is billed. `answer` goes to the log."""
        outcome = ticket.conclude([], status=OK, http_status=200, usage=usage)
        try:
            await asyncio.shield(self.settlement.close(ticket, outcome))
        except Exception as exc:
            raise METERING_UNAVAILABLE() from exc
        finally:
            ticket.end()
        self.bodies.record(ticket.call, outcome.ended_ms, answer, OK)
        return outcome.charge

    def fail(self, ticket: Ticket, error: GatewayError) -> None:
        """Close a call refused after it started (a malformed upload, a quota passed): recorded with its
        status and code, nothing billed."""
        outcome = ticket.conclude([], status=ERROR, http_status=error.status, error_code=str(error.code or "error"))
        self.settlement.close(ticket, outcome)
        self.bodies.record(ticket.call, outcome.ended_ms, error.openai_body(), ERROR)
        ticket.end()

    def _internal_error(self, ticket: Ticket, attempts: list[Attempt]) -> None:
        outcome = ticket.conclude(attempts, status=ERROR, http_status=500, error_code="internal_error")
        self.settlement.close(ticket, outcome)


class _Sink:
    """A stream's side of the pipeline: checkpoints and its one outcome."""

    def __init__(
        self,
        path: RequestPath,
        ticket: Ticket,
        attempts: list[Attempt],
        target: Target,
        lease: Lease,
        headers: dict[str, str],
    ) -> None:
        self._path, self._ticket, self._attempts, self._target, self._lease = path, ticket, attempts, target, lease
        self._headers = headers
        self.keeps_frames = ticket.claim is not None

    def checkpoint(self, delivered_chars: int) -> None:
        self._path.store.checkpoint(self._ticket.call.request_id, delivered_chars, now_ms())

    def _outcome(self, status: str, http_status: int, error_code: str | None, usage: Usage) -> Outcome:
        return self._ticket.conclude(
            self._attempts,
            status=status,
            http_status=http_status,
            target=self._target,
            usage=usage,
            error_code=error_code,
        )

    async def finish(
        self,
        status: str,
        http_status: int,
        error_code: str | None,
        usage: Usage,
        transcript: Transcript,
        sent: list[bytes] | None = None,
        last: LastFrames | None = None,
    ) -> list[bytes]:
        outcome = self._outcome(status, http_status, error_code, usage)
        assert outcome.charge is not None
        frames = last(outcome.charge.micro) if last is not None else []
        answer = None
        if sent is not None and status == OK:
            body = orjson.dumps([frame.decode() for frame in (*sent, *frames)])
            answer = Answer(200, self._headers, True, body)
        written = self._path.settlement.close(self._ticket, outcome, delivered=True, answer=answer)
        try:
            await asyncio.shield(written)
        except Exception as exc:
            raise METERING_UNAVAILABLE() from exc
        call = self._ticket.call
        if status == OK:
            self._path.latency.observe(call.model, now_ms() - call.started_ms)
        self._path.bodies.record(call, outcome.ended_ms, transcript.result(), status)
        return frames

    def abandon(
        self, status: str, http_status: int, error_code: str | None, usage: Usage, transcript: Transcript
    ) -> None:
        outcome = self._outcome(status, http_status, error_code, usage)
        self._path.settlement.close(self._ticket, outcome, delivered=True)
        call = self._ticket.call
        self._path.bodies.record(call, outcome.ended_ms, transcript.result(), status)

    def release(self) -> None:
        self._lease.release()
        self._ticket.end()


def served_headers(call: Call, target: Target, depth: int, cache_status: str | None) -> dict[str, str]:
    headers = {"x-model-used": target.model}
    if depth:
        headers["x-fallback-from"] = call.model
        headers["x-fallback-depth"] = str(depth)
    if cache_status is not None:
        headers["x-cache-status"] = cache_status
    return headers


def money_headers(ticket: Ticket, charge_micro: int) -> dict[str, str]:
    """A unary answer's charge in credits, and for a prepaid project the wallet debit it makes (the same
    amount: the ledger's usage entry). Streams send their headers before the cost is known: neither."""
    credits = format_credits(charge_micro)
    project = ticket.caller.project
    if project is not None and project.prepaid:
        return {"x-credits-used": credits, "x-wallet-debit": credits}
    return {"x-credits-used": credits}
