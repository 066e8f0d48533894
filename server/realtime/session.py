"""One realtime session: the client's WebSocket and the upstream session, relayed event by event, metered per
response (server/realtime/responses.py).

Three tasks and a clock run while the session lasts:

- client -> upstream: each client event is forwarded before the next is read (the upstream's socket buffer is
  the only one); `response.create` is first reserved (refused: an `error` event, never forwarded, the session
  stays open); appended audio and other events count toward the next response's input estimate and bound.
- upstream -> client: each event is measured (deltas delivered, `response.done` settled and committed before
  it is passed on, with `usage.cost` added) and queued for the client (at most `send_buffer_kb`); a full
  queue pauses the upstream.
  Deltas pass through as the upstream sent them, byte for byte.
- the sender: takes one queued event at a time to the client; one the client does not take within
  `write_timeout_s` (it stopped reading) ends the session and cuts the connection, so it is never held in
  memory beyond the queue and the socket's buffer.
- the clock: `max_session_s` and `idle_timeout_s`.

The first ending wins (client closed, upstream closed, too slow, expired, idle, key revoked, graceful stop,
metering unavailable). Then: the client gets the ending's `error` event and close code (within
CLOSE_DEADLINE_S, else the connection is cut); responses still running are cancelled upstream and billed from
the usage the upstream reports within `cancel_wait_s`, else by estimate; reserved ones are released; the
upstream session is closed; the session's own row is closed. A graceful stop first lets running responses
finish (refusing new ones) until the grace runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from server.clock import now_ms
from server.errors import (
    CLIENT_TOO_SLOW,
    INSUFFICIENT_QUOTA,
    INTERNAL_ERROR,
    INVALID_CLIENT_EVENT,
    KEY_EXPIRED,
    KEY_REVOKED,
    METERING_UNAVAILABLE,
    SESSION_EXPIRED,
    SESSION_IDLE,
    SESSION_STOPPING,
    UPSTREAM_CLOSED,
    GatewayError,
)
from server.money import credits_number
from server.providers.realtime import UpstreamClosed
from server.realtime.events import (
    AUDIO_DELTAS,
    SESSION_EVENTS,
    TEXT_DELTAS,
    audio_ms,
    dumps,
    error_event,
    parse,
    session_audio,
)
from server.realtime.opening import Opened
from server.realtime.outbox import Outbox
from server.realtime.responses import Responses
from server.settings import RealtimeSettings
from server.settlement import DISCONNECTED, ERROR, OK, UPSTREAM_FAILED, conclude

log = logging.getLogger("gateway.realtime")

CLOSE_DEADLINE_S = 1.0
INTERRUPTED = "interrupted"
NORMAL_CLOSES = (1000, 1001, 1005)


class ClientGone(Exception):
    """The client's connection is closed (its send or receive failed)."""


class ClientSocket(Protocol):
    """The client's side of the session, as the API layer adapts its WebSocket."""

    close_code: int | None

    async def accept(self) -> None: ...

    async def receive(self) -> str | bytes | None:
        """The next message, or None once the client has closed (its code in `close_code`)."""
        ...

    async def send(self, text: str) -> None:
        """Raises ClientGone when the connection is closed."""
        ...

    async def close(self, code: int, reason: str) -> None: ...

    def abort(self) -> None:
        """Cut the connection now (a client that does not read cannot be sent a close frame)."""
        ...


@dataclass(frozen=True, slots=True)
class Ending:
    """Why the session ends: its row's status and error code, the error event the client is told (if any),
    the close code and reason, and how (drain what is queued first; cut instead of closing)."""

    status: str
    code: str | None = None
    error: GatewayError | None = None
    close_code: int = 1000
    reason: str = ""
    drain: bool = False
    cut: bool = False

    @classmethod
    def telling(cls, error: GatewayError, status: str, close_code: int, **how: Any) -> Ending:
        reason = error.code.replace("_", " ") if error.code else ""
        return cls(status, error.code, error, close_code, reason, **how)


class RealtimeSession:
    def __init__(self, opened: Opened, settings: RealtimeSettings, client: ClientSocket) -> None:
        self.opened = opened
        self.caller = opened.caller
        self._settings = settings
        self._client = client
        self._upstream = opened.upstream
        self.responses = Responses(opened.path, opened.caller, opened.intent.call, opened.dialect, opened.target)
        self._outbox = Outbox(settings.send_buffer_kb << 10)
        self._ending: Ending | None = None
        self._ended = asyncio.Event()
        self._stopping = False
        self._client_gone = False
        self._last_activity = time.monotonic()
        self._deadline = time.monotonic() + settings.max_session_s
        self._rate_in, self._rate_out = session_audio(None)
        self._client_bytes = 0  # every byte the client sent: with the outputs, a bound on the conversation
        self._session_bytes = 0  # the upstream session object (instructions, tools): input of every response
        self._output_tokens = 0
        self._errors = 0

    @property
    def key_id(self) -> str:
        return self.caller.key_id

    # endings

    def end(self, ending: Ending) -> None:
        """End the session (the first ending wins); returns at once, the run loop does the rest."""
        if self._ending is None:
            self._ending = ending
            self._ended.set()

    def stop(self) -> None:
        """A graceful stop: no new responses; the session ends once its running ones have finished."""
        self._stopping = True
        if not self.responses:
            self.end(Ending.telling(SESSION_STOPPING(), INTERRUPTED, 1012))

    # running

    async def run(self) -> None:
        try:
            await self._client.accept()
        except Exception:
            self.end(Ending(DISCONNECTED, "client_disconnected"))
        tasks: list[asyncio.Task[None]] = []
        if self._ending is None:
            tasks = [
                self._spawn(self._from_client()),
                self._spawn(self._from_upstream()),
                self._spawn(self._to_client()),
                self._spawn(self._clock()),
            ]
        try:
            await self._ended.wait()
        finally:
            await asyncio.shield(self._finish(tasks))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("realtime session %s failed inside the gateway", self.opened.intent.call.request_id)
                self.end(Ending.telling(INTERNAL_ERROR(), ERROR, 1011))

        return asyncio.get_running_loop().create_task(guarded())

    def _touch(self) -> None:
        self._last_activity = time.monotonic()

    async def _tell(self, error: GatewayError, client_event_id: Any = None) -> None:
        self._errors += 1
        await self._queue(error_event(error, client_event_id, self._errors))

    async def _queue(self, text: str) -> None:
        if not self._client_gone:
            await self._outbox.put(text)

    async def _to_upstream(self, text: str) -> None:
        try:
            await self._upstream.send(text)
        except UpstreamClosed as exc:
            self.end(Ending.telling(UPSTREAM_CLOSED(detail=str(exc)), UPSTREAM_FAILED, 1011, drain=True))

    async def _from_client(self) -> None:
        while True:
            try:
                message = await self._client.receive()
            except ClientGone:
                message = None
            if message is None:
                code = self._client.close_code
                status = OK if code in NORMAL_CLOSES else DISCONNECTED
                self.end(Ending(status, None if status == OK else "client_disconnected"))
                return
            self._touch()
            event = parse(message) if isinstance(message, str) else None
            if event is None:
                await self._tell(INVALID_CLIENT_EVENT(detail="Events are JSON objects with a 'type', sent as text."))
                continue
            self._client_bytes += len(message)
            kind = event["type"]
            if kind == "response.create":
                await self._response_create(event, message)
                continue
            if kind == "input_audio_buffer.append":
                self.responses.added(0, audio_ms(event.get("audio"), self._rate_in))
            else:
                self.responses.added(len(message), 0)
            await self._to_upstream(message)

    async def _response_create(self, event: dict[str, Any], message: str) -> None:
        client_event_id = event.get("event_id")
        key = self.caller.key
        if key is not None and key.revoked_ms is not None:  # revoked while the session was opening
            self.end(Ending.telling(KEY_REVOKED(), ERROR, 1008))
            return
        if key is not None and key.expires_ms is not None and key.expires_ms <= now_ms():
            self.end(Ending.telling(KEY_EXPIRED(), ERROR, 1008))
            return
        if self._stopping:
            await self._tell(SESSION_STOPPING(), client_event_id)
            return
        dialect, model = self.opened.dialect, self.opened.model
        dialect.input_bound = min(model.context_window, self._client_bytes + self._session_bytes + self._output_tokens)
        try:
            response = self.responses.reserve(event, message.encode())
        except GatewayError as exc:
            refusal = INSUFFICIENT_QUOTA(detail=exc.message) if exc.status == 402 else exc
            await self._tell(refusal, client_event_id)
            return
        self.responses.reserved.append(response)
        await self._to_upstream(dumps(event))

    async def _from_upstream(self) -> None:
        while True:
            try:
                text = await self._upstream.recv()
            except UpstreamClosed as exc:
                self.end(Ending.telling(UPSTREAM_CLOSED(detail=str(exc)), UPSTREAM_FAILED, 1011, drain=True))
                return
            self._touch()
            event = parse(text)
            if event is not None:
                text = await self._measure(event, text)
            await self._queue(text)
            if self._stopping and not self.responses:
                self.end(Ending.telling(SESSION_STOPPING(), INTERRUPTED, 1012, drain=True))

    async def _measure(self, event: dict[str, Any], text: str) -> str:
        """Meter one upstream event; the text to pass on (response.done gains `usage.cost`)."""
        kind = event["type"]
        if kind in TEXT_DELTAS or kind in AUDIO_DELTAS:
            delta = event.get("delta")
            if kind in TEXT_DELTAS:
                self.responses.delivered(event.get("response_id"), len(delta) if isinstance(delta, str) else 0, 0)
            else:
                self.responses.delivered(event.get("response_id"), 0, audio_ms(delta, self._rate_out))
        elif kind in SESSION_EVENTS:
            session = event.get("session")
            self.opened.dialect.session = session if isinstance(session, dict) else {}
            self._rate_in, self._rate_out = session_audio(session)
            self._session_bytes = len(text)
        elif kind == "response.created":
            await self._created(event.get("response"))
        elif kind == "response.done":
            return await self._done(event, text)
        elif kind == "error":
            error = event.get("error") if isinstance(event.get("error"), dict) else {}
            self.responses.refused(error.get("event_id"), error.get("code"))
        return text

    async def _created(self, response: Any) -> None:
        upstream_id = response.get("id") if isinstance(response, dict) else None
        if not isinstance(upstream_id, str) or self.responses.created(upstream_id) is not None:
            return
        try:
            _, refusal = self.responses.started_by_upstream(upstream_id)
        except GatewayError:  # not even a forced hold (the store cannot take writes): nothing may run unmetered
            await self._to_upstream(dumps({"type": "response.cancel", "response_id": upstream_id}))
            self.end(Ending.telling(METERING_UNAVAILABLE(), ERROR, 1011))
            return
        if refusal is not None:
            await self._to_upstream(dumps({"type": "response.cancel", "response_id": upstream_id}))
            await self._tell(INSUFFICIENT_QUOTA(detail=refusal.message) if refusal.status == 402 else refusal)

    async def _done(self, event: dict[str, Any], text: str) -> str:
        response = event.get("response")
        if not isinstance(response, dict):
            return text
        if response.get("id") not in self.responses.running:  # never announced: metered all the same
            await self._created(response)
        try:
            charge = await self.responses.done(response)
        except GatewayError as exc:  # the usage could not be recorded: fail closed
            self.end(Ending.telling(exc, ERROR, 1011, drain=True))
            return text
        if charge is None:
            return text
        usage = response.get("usage")
        self._output_tokens += usage.get("output_tokens", 0) if isinstance(usage, dict) else 0
        if isinstance(usage, dict):
            usage["cost"] = credits_number(charge.micro)
            return dumps(event)
        return text

    async def _to_client(self) -> None:
        while True:
            text = await self._outbox.get()
            try:
                async with asyncio.timeout(self._settings.write_timeout_s):
                    await self._client.send(text)
            except TimeoutError:
                seconds = self._settings.write_timeout_s
                self.end(Ending.telling(CLIENT_TOO_SLOW(seconds=seconds), DISCONNECTED, 1008, cut=True))
                return
            except ClientGone:
                self.end(Ending(DISCONNECTED, "client_disconnected"))
                return

    async def _clock(self) -> None:
        settings = self._settings
        while True:
            now = time.monotonic()
            if now >= self._deadline:
                self.end(Ending.telling(SESSION_EXPIRED(seconds=settings.max_session_s), OK, 1000))
                return
            idle_until = self._last_activity + settings.idle_timeout_s
            if now >= idle_until:
                self.end(Ending.telling(SESSION_IDLE(seconds=settings.idle_timeout_s), OK, 1000))
                return
            await asyncio.sleep(max(0.05, min(self._deadline, idle_until) - now))

    # ending

    async def _finish(self, tasks: list[asyncio.Task[None]]) -> None:
        ending = self._ending or Ending(ERROR, "internal_error")
        reader, pump, sender, clock = tasks if tasks else (None, None, None, None)
        for task in (reader, clock):
            if task is not None:
                task.cancel()
        if ending.drain and sender is not None and not ending.cut:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.write_timeout_s):
                    while not self._outbox.empty() and not sender.done():
                        await asyncio.sleep(0.01)
        if sender is not None:
            sender.cancel()
        self._client_gone = True
        self._outbox.clear()  # frees an upstream pump waiting for room
        await self._close_client(ending)
        status = DISCONNECTED if ending.status == OK else ending.status
        self.responses.ending = (status, ending.code or "client_disconnected")
        await self._cancel_running(pump)
        if pump is not None:
            pump.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.responses.end(*self.responses.ending)
        with contextlib.suppress(Exception):
            await self._upstream.close()
        self.opened.release()
        outcome = conclude(
            self.opened.model.rates,
            self.opened.attempts,
            status=ending.status,
            http_status=101,
            target=self.opened.target,
            error_code=ending.code,
        )
        written = self.opened.path.settlement.close_session(self.opened.intent, self.opened.intent_written, outcome)
        with contextlib.suppress(Exception):
            await written

    async def _close_client(self, ending: Ending) -> None:
        if ending.error is None and not ending.cut and self._client.close_code is not None:
            return  # the client closed; its close was answered
        if ending.cut:
            self._client.abort()
            return
        try:
            async with asyncio.timeout(CLOSE_DEADLINE_S):
                if ending.error is not None:
                    self._errors += 1
                    await self._client.send(error_event(ending.error, None, self._errors))
                await self._client.close(ending.close_code, ending.reason)
        except (TimeoutError, ClientGone, Exception):
            self._client.abort()

    async def _cancel_running(self, pump: asyncio.Task[None] | None) -> None:
        """Ask the upstream to cancel the running responses, and give it `cancel_wait_s` to report their usage."""
        if not self.responses.running or pump is None or pump.done():
            return
        for upstream_id in list(self.responses.running):
            await self._to_upstream(dumps({"type": "response.cancel", "response_id": upstream_id}))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._settings.cancel_wait_s):
                while self.responses.running and not pump.done():
                    await asyncio.sleep(0.02)
