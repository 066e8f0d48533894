"""Pass an upstream stream on to the client, event by event, metering as it goes.

The relay is the same for every front door; a `StreamAdapter` (one per dialect) turns upstream
events into the client's frames, taps the provider's usage, and holds back the terminal frame(s) so the
outcome is recorded before the client sees the stream complete.

- Each event is sent before the next is read. Each read waits at most the provider's silence timeout
  (`first_byte`) and never past its `total` deadline, so a stalled upstream cannot outlive either.
- A stream that breaks after the first byte ends with the front door's error frame, never a clean
  finish, and is billed for the input plus the output delivered (estimated if no usage arrived).
- A client that goes away (the generator is closed or cancelled) cancels the upstream call and is
  billed the same way; with `drain`, the rest is read (within the deadline) and billed whole instead.
- While it runs, the characters delivered are checkpointed (first frame, first content, then every half
  second), so a crash bills what the client received.
- Usage: the provider's final count when it sent a sane one, else `metering.estimate` (marked estimated).
- A graceful stop whose grace has run out (`OpenStreams.stop_all`) ends each stream at its next upstream
  read with the front door's error frame (503 `server_shutting_down`), recorded as `interrupted` and billed
  for what was delivered, like a broken upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from server.errors import INTERNAL_ERROR, SERVER_STOPPING, GatewayError, UpstreamError
from server.metering import estimate
from server.types import Usage

log = logging.getLogger("gateway.relay")

CHECKPOINT_INTERVAL_S = 0.5
INTERRUPTED = "interrupted"  # the status of a stream a stop ended (the restart rule's word for the same fact)
_END = object()


class Transcript(Protocol):
    """What a stream added up to (server.streaming.transcript), for the request log and replay."""

    def result(self) -> dict[str, Any]: ...


class StreamAdapter(Protocol):
    reported: Usage | None  # the provider's latest sane usage (a running count until `final`)
    final: bool  # `reported` is the provider's final count
    delivered_chars: int
    transcript: Transcript

    def on_event(self, event: Any) -> list[bytes]: ...

    def finish(self, usage: Usage, charge_micro: int) -> list[bytes]: ...

    def error(self, exc: GatewayError) -> list[bytes]: ...


LastFrames = Callable[[int], list[bytes]]  # the stream's closing frames, given its charge (micro-units)


class StreamSink(Protocol):
    """Where a stream's facts go: progress checkpoints and its one outcome."""

    keeps_frames: bool  # the sink wants every frame sent (an idempotent request stores them)

    def checkpoint(self, delivered_chars: int) -> None: ...

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
        """Record the outcome and wait for the commit; returns the closing frames (`last`, made with the
        outcome's charge before the commit, so they can be stored with it). Raises GatewayError (503) when
        the outcome cannot be recorded."""
        ...

    def abandon(
        self, status: str, http_status: int, error_code: str | None, usage: Usage, transcript: Transcript
    ) -> None:
        """Record the outcome without waiting (the client is gone)."""
        ...

    def release(self) -> None:
        """Give back what the stream held upstream (its connection lease)."""
        ...


class OpenStreams:
    """The streams being relayed now, so a graceful stop can wait for them and, when its grace has run out,
    end each one with an error frame (recorded and billed) instead of cutting the connection."""

    def __init__(self) -> None:
        self._relays: set[StreamRelay] = set()

    def __len__(self) -> int:
        return len(self._relays)

    def add(self, relay: StreamRelay) -> None:
        self._relays.add(relay)

    def discard(self, relay: StreamRelay) -> None:
        self._relays.discard(relay)

    def stop_all(self) -> int:
        """Ask every open stream to end now; returns how many were asked."""
        relays = list(self._relays)
        for relay in relays:
            relay.stop()
        return len(relays)


class StreamRelay:
    def __init__(
        self,
        *,
        stream: Any,
        events: AsyncIterator[Any],
        first: Any,
        adapter: StreamAdapter,
        input_bytes: int,
        sink: StreamSink,
        provider: str,
        silence_s: float,
        deadline: float,
        drain: bool = False,
        streams: OpenStreams | None = None,
    ) -> None:
        self._stream = stream
        self._events = events
        self._first = first
        self._adapter = adapter
        self._input_bytes = input_bytes
        self._sink = sink
        self._provider = provider
        self._silence_s = silence_s
        self._deadline = deadline
        self._drain = drain
        self._streams = streams
        self._stopping = False
        self._timer: asyncio.Timeout | None = None
        self._recorded = False
        self._next_checkpoint = 0.0
        self._checkpointed = -1
        self._sent: list[bytes] | None = [] if sink.keeps_frames else None

    def usage(self) -> Usage:
        adapter = self._adapter
        if adapter.final and adapter.reported is not None:
            return adapter.reported
        return estimate(self._input_bytes, adapter.delivered_chars, adapter.reported)

    def stop(self) -> None:
        """End the stream at its next upstream read (now, if it is waiting for one): see OpenStreams."""
        self._stopping = True
        if self._timer is not None:
            self._timer.reschedule(asyncio.get_running_loop().time())

    async def run(self) -> AsyncIterator[bytes]:
        if self._streams is not None:
            self._streams.add(self)
        try:
            async for data in self._relay():
                yield data
        finally:
            if self._streams is not None:
                self._streams.discard(self)
            if not self._recorded:  # the client went away (or we were cancelled) mid-stream
                self._recorded = True
                if self._drain:
                    await self._drain_rest()
                usage, transcript = self.usage(), self._adapter.transcript
                self._sink.abandon("client_disconnected", 499, "client_disconnected", usage, transcript)
            with contextlib.suppress(Exception):  # the upstream connection may already be gone
                await self._stream.aclose()
            self._sink.release()

    async def _next(self) -> Any:
        """The next upstream event (or _END), waiting no longer than the silence and total timeouts allow."""
        if self._stopping:
            raise SERVER_STOPPING()
        remaining = self._deadline - time.monotonic()
        which = "first_byte" if self._silence_s < remaining else "total"
        try:
            async with asyncio.timeout(max(0.0, min(self._silence_s, remaining))) as timer:
                self._timer = timer
                return await anext(self._events)
        except StopAsyncIteration:
            return _END
        except TimeoutError:
            if self._stopping:
                raise SERVER_STOPPING() from None
            raise UpstreamError(
                504, f"{self._provider}: {which} timeout", retryable=True, upstream_status="timeout"
            ) from None
        finally:
            self._timer = None

    def _progress(self) -> None:
        """Checkpoint the first frame, the first content, then at most every CHECKPOINT_INTERVAL_S."""
        now = time.monotonic()
        delivered = self._adapter.delivered_chars
        first_content = delivered and self._checkpointed <= 0
        if (now >= self._next_checkpoint or first_content) and delivered != self._checkpointed:
            self._next_checkpoint = now + CHECKPOINT_INTERVAL_S
            self._checkpointed = delivered
            self._sink.checkpoint(delivered)

    async def _relay(self) -> AsyncIterator[bytes]:
        adapter = self._adapter
        try:
            event = self._first
            sent = self._sent
            while event is not _END:
                for frame in adapter.on_event(event):
                    if sent is not None:
                        sent.append(frame)
                    yield frame
                self._progress()
                event = await self._next()
        except GatewayError as exc:
            self._recorded = True
            status = INTERRUPTED if exc.code == SERVER_STOPPING.code else "upstream_failed"
            with contextlib.suppress(GatewayError):  # the error frame is the client's answer either way
                await self._sink.finish(status, 200, exc.code, self.usage(), adapter.transcript)
            for frame in adapter.error(exc):
                yield frame
            return
        except Exception:
            log.exception("stream from %s failed inside the gateway", self._provider)
            self._recorded = True
            with contextlib.suppress(GatewayError):
                await self._sink.finish("error", 500, "internal_error", self.usage(), adapter.transcript)
            for frame in adapter.error(INTERNAL_ERROR()):
                yield frame
            return
        self._recorded = True
        usage = self.usage()
        try:
            frames = await self._sink.finish(
                "ok", 200, None, usage, adapter.transcript, self._sent, lambda charge: adapter.finish(usage, charge)
            )
        except GatewayError as exc:
            for frame in adapter.error(exc):
                yield frame
            return
        for frame in frames:
            yield frame

    async def _drain_rest(self) -> None:
        """Read the rest of the upstream answer (within the deadline), metering it; frames are dropped."""
        try:
            while (event := await self._next()) is not _END:
                self._adapter.on_event(event)
        except Exception as exc:  # a broken or timed-out drain bills what was read
            log.info("drain of a %s stream stopped: %s", self._provider, exc)
