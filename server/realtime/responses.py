"""The responses of one realtime session, each a metered call of its own.

Lifecycle of one response (see server/realtime/session.py for who calls what):

    reserve   a client `response.create`: `RequestPath.start` (scopes, limits, the worst-case hold, the intent
              row with session_id = the session's id); refused -> the client gets an `error` event instead
    created   the upstream's `response.created` binds the oldest reserved one (they are answered in order); one
              the upstream started on its own (server VAD) is reserved then, or, when it cannot be, held anyway
              (`forced`) and cancelled at once, so it is still metered
    delta     text characters and audio milliseconds delivered, checkpointed with the running estimate (first
              delta, then every CHECKPOINT_INTERVAL_S) so a crash bills what the client received
    done      `response.done`: one usage row and ledger debit from the reported usage (or the estimate, marked),
              the hold settled, committed before the event reaches the client
    refused   the upstream's `error` naming the event id of a reserved response.create: released, never billed
    end       the session is over: responses still running are billed by estimate (status client_disconnected,
              upstream_failed or interrupted), reserved ones released

Every hold resolves exactly once, through Settlement.close.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from server.clock import now_ms
from server.errors import METERING_UNAVAILABLE, GatewayError
from server.metering import estimate, realtime_usage
from server.pipeline import RequestPath
from server.realtime.dialect import RealtimeDialect
from server.settlement import DISCONNECTED, ERROR, OK, Ticket, conclude
from server.types import Call, Caller, Charge, Target, Usage

CHECKPOINT_INTERVAL_S = 0.5


@dataclass(slots=True)
class Turn:
    """What the client added to the conversation since the last response.create (the estimate's input)."""

    text_bytes: int = 0
    audio_ms: int = 0


@dataclass(eq=False)
class Response:
    """One response: its ticket and what it delivered so far."""

    ticket: Ticket
    event_id: str  # the response.create event id (the client's, or one the gateway gave it)
    turn: Turn
    context_tokens: int  # the conversation before this turn (the last reported input + output)
    upstream_id: str | None = None
    text_chars: int = 0
    audio_ms: int = 0
    started: float = field(default_factory=time.monotonic)
    _next_checkpoint: float = 0.0

    def estimate(self, reported: Usage | None = None) -> Usage:
        return estimate(
            self.turn.text_bytes,
            self.text_chars,
            reported,
            context_tokens=self.context_tokens,
            input_audio_ms=self.turn.audio_ms,
            delivered_audio_ms=self.audio_ms,
        )

    @property
    def delivered(self) -> bool:
        return bool(self.text_chars or self.audio_ms)


class Responses:
    """The reserved (awaiting `response.created`, in order) and running (by upstream id) responses of a session."""

    def __init__(self, path: RequestPath, caller: Caller, session: Call, dialect: RealtimeDialect, target: Target):
        self._path, self._caller, self._session, self._dialect, self._target = path, caller, session, dialect, target
        self.reserved: deque[Response] = deque()
        self.running: dict[str, Response] = {}
        self.context_tokens = 0
        self.ending: tuple[str, str] | None = None  # (status, error code) once the session is ending
        self._turn = Turn()
        self._numbers = 0

    def __len__(self) -> int:
        return len(self.reserved) + len(self.running)

    def added(self, text_bytes: int, audio_ms: int) -> None:
        """The client added to the conversation (an item, instructions, appended audio)."""
        self._turn.text_bytes += text_bytes
        self._turn.audio_ms += audio_ms

    def _call(self, event: dict[str, Any], raw: bytes) -> Call:
        session = self._session
        return Call(
            request_id=str(uuid.uuid4()),
            endpoint="realtime",
            model=session.model,
            body=event,
            stream=True,
            started_ms=now_ms(),
            body_bytes=self._turn.text_bytes + len(raw),
            raw=raw,
            session_id=session.request_id,
        )

    def reserve(self, event: dict[str, Any], raw: bytes, *, forced: bool = False) -> Response:
        """Admit one response (its event may gain an event_id and an output cap); raises the GatewayError the
        client gets as an `error` event."""
        call = self._call(event, raw)
        ticket = self._path.start(self._caller, call, self._dialect, forced=forced)
        if not isinstance(event.get("event_id"), str):
            self._numbers += 1
            event["event_id"] = f"event_gw_response_{self._numbers}"
        turn, self._turn = self._turn, Turn()
        return Response(ticket, event["event_id"], turn, self.context_tokens)

    def created(self, upstream_id: str) -> Response | None:
        """Bind the upstream's new response to the oldest reserved one (None: the upstream started it itself)."""
        if not self.reserved:
            return None
        response = self.reserved.popleft()
        response.upstream_id = upstream_id
        self.running[upstream_id] = response
        return response

    def started_by_upstream(self, upstream_id: str) -> tuple[Response, GatewayError | None]:
        """A response the upstream created on its own (server VAD): reserved now, or held anyway (forced) and
        to be cancelled, with the refusal the client is told."""
        event = {"type": "response.create", "response": {}, "event_id": f"event_gw_auto_{upstream_id}"}
        raw = b'{"type":"response.create","response":{}}'
        refusal = None
        try:
            response = self.reserve(event, raw)
        except GatewayError as exc:
            refusal = exc
            response = self.reserve(event, raw, forced=True)
        response.upstream_id = upstream_id
        self.running[upstream_id] = response
        return response, refusal

    def delivered(self, upstream_id: Any, chars: int, audio_ms: int) -> None:
        response = self.running.get(upstream_id) if isinstance(upstream_id, str) else None
        if response is None:
            return
        response.text_chars += chars
        response.audio_ms += audio_ms
        now = time.monotonic()
        if now >= response._next_checkpoint:
            response._next_checkpoint = now + CHECKPOINT_INTERVAL_S
            call = response.ticket.call
            self._path.store.checkpoint(call.request_id, response.text_chars, now_ms(), response.estimate())

    async def done(self, upstream: dict[str, Any]) -> Charge | None:
        """`response.done`: its usage row, debit and settled hold, committed (raises METERING_UNAVAILABLE when
        the store refused it: the session must end). None for a response this session does not know."""
        upstream_id = upstream.get("id")
        response = self.running.pop(upstream_id, None) if isinstance(upstream_id, str) else None
        if response is None:
            return None
        reported = realtime_usage(upstream.get("usage"))
        usage = reported if reported is not None else response.estimate()
        if reported is not None:
            self.context_tokens = reported.input_tokens + reported.output_tokens
        failed = upstream.get("status") == "failed"
        error_code = "upstream_failed" if failed else None
        status, http = (ERROR, 502) if failed else (OK, 200)
        if self.ending is not None:  # cancelled because the session ended: its row says why
            (status, error_code), http = self.ending, 499
        charge = await self._close(response, status, http, error_code, usage)
        self._path.bodies.record(response.ticket.call, now_ms(), upstream, status)
        return charge

    def refused(self, client_event_id: Any, code: Any) -> Response | None:
        """The upstream refused a reserved response.create (an `error` naming its event id): released."""
        for response in self.reserved:
            if response.event_id == client_event_id:
                self.reserved.remove(response)
                outcome = conclude(
                    response.ticket.model.rates,
                    [],
                    status=ERROR,
                    http_status=400,
                    error_code=str(code or "upstream_refused")[:64],
                )
                self._settle(response, outcome)
                return response
        return None

    def refused_here(self, response: Response) -> None:
        """A reservation whose event never went upstream (the session ended first): released."""
        outcome = conclude(response.ticket.model.rates, [], status=ERROR, http_status=499, error_code="not_sent")
        self._settle(response, outcome)

    async def end(self, status: str, error_code: str) -> None:
        """The session is over: running responses billed by estimate (never zero for delivered output),
        reserved ones released."""
        while self.reserved:
            self.refused_here(self.reserved.popleft())
        running, self.running = list(self.running.values()), {}
        for response in running:
            http = 499 if status == DISCONNECTED else 502
            try:
                await self._close(response, status, http, error_code, response.estimate())
            except GatewayError:
                pass  # kept in the settlement backlog: written when the store recovers

    async def _close(self, response: Response, status: str, http: int, error_code: str | None, usage: Usage) -> Charge:
        ticket = response.ticket
        outcome = conclude(
            ticket.model.rates,
            [],
            status=status,
            http_status=http,
            target=self._target,
            usage=usage,
            error_code=error_code,
        )
        written = self._settle(response, outcome, delivered=True)
        try:
            await asyncio.shield(written)
        except Exception as exc:
            raise METERING_UNAVAILABLE() from exc
        assert outcome.charge is not None
        if status == OK:
            self._path.latency.observe(ticket.call.model, now_ms() - ticket.call.started_ms)
        return outcome.charge

    def _settle(self, response: Response, outcome: Any, *, delivered: bool = False) -> asyncio.Future[Any]:
        try:
            return self._path.settlement.close(response.ticket, outcome, delivered=delivered)
        finally:
            response.ticket.end()
