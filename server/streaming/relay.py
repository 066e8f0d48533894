"""Pass an upstream stream on to the client, event by event, metering as it goes.

The relay is the same for every front door; a `StreamAdapter` (one per dialect) turns upstream
events into the client's frames, taps usage, and holds back the terminal frame(s) so the outcome is
recorded before the client sees the stream complete.

- Each event is sent before the next is read.
- A stream that breaks after the first byte ends with the front door's error frame, never a clean
  finish, and is billed for the input plus the output delivered (estimated if no usage arrived).
- A client that disconnects cancels the upstream call; what was delivered is still metered.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from server.errors import GatewayError
from server.metering import charge_for, estimate_tokens
from server.snapshot import ModelEntry
from server.types import Outcome, Usage


class StreamAdapter(Protocol):
    usage: Usage | None
    delivered_chars: int

    def on_event(self, event: Any) -> list[bytes]: ...

    def finish(self, usage: Usage, charge_micro: int) -> list[bytes]: ...

    def error(self, exc: GatewayError) -> list[bytes]: ...


class StreamRelay:
    def __init__(
        self,
        *,
        stream: Any,
        events: AsyncIterator[Any],
        first: Any,
        adapter: StreamAdapter,
        model: ModelEntry,
        input_chars: int,
        outcome: Outcome,
        finish: Callable[[Outcome], Awaitable[None]],
        finish_nowait: Callable[[Outcome], Any],
    ) -> None:
        self._stream = stream
        self._events = events
        self._first = first
        self._adapter = adapter
        self._model = model
        self._input_chars = input_chars
        self._outcome = outcome
        self._finish = finish
        self._finish_nowait = finish_nowait
        self._recorded = False

    def _settle(self, status: str, http_status: int, error_code: str | None = None) -> Outcome:
        usage = self._adapter.usage
        if usage is None:
            usage = Usage(
                input_tokens=estimate_tokens(self._input_chars),
                output_tokens=estimate_tokens(self._adapter.delivered_chars),
                estimated=True,
            )
        outcome = self._outcome
        outcome.status, outcome.http_status, outcome.error_code = status, http_status, error_code
        outcome.usage, outcome.charge = usage, charge_for(usage, self._model.rates)
        self._recorded = True
        return outcome

    async def run(self) -> AsyncIterator[bytes]:
        try:
            async for data in self._relay():
                yield data
        finally:
            if not self._recorded:  # the client went away (or we were cancelled) mid-stream
                self._finish_nowait(self._settle("client_disconnected", 499, "client_disconnected"))
            with contextlib.suppress(Exception):  # the upstream connection may already be gone
                await self._stream.aclose()

    async def _relay(self) -> AsyncIterator[bytes]:
        adapter = self._adapter
        try:
            for frame in adapter.on_event(self._first):
                yield frame
            async for event in self._events:
                for frame in adapter.on_event(event):
                    yield frame
        except GatewayError as exc:
            with contextlib.suppress(GatewayError):  # the error frame is the client's answer either way
                await self._finish(self._settle("upstream_failed", 200, exc.code))
            for frame in adapter.error(exc):
                yield frame
            return
        outcome = self._settle("ok", 200)
        try:
            await self._finish(outcome)
        except GatewayError as exc:
            for frame in adapter.error(exc):
                yield frame
            return
        assert outcome.usage is not None and outcome.charge is not None
        for frame in adapter.finish(outcome.usage, outcome.charge.micro):
            yield frame
