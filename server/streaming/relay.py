"""Pass an upstream chat stream on to the client, chunk by chunk, metering as it goes.

- Each chunk is sent before the next is read; usage is tapped from the stream as it passes.
- The upstream usage chunk (we always ask for it) is passed on only if the client asked
  (stream_options.include_usage), after the outcome is recorded and with `usage.cost` added.
- A stream that breaks after the first byte ends with an error event, never `[DONE]`, and is
  billed for the input plus the output delivered (estimated if the provider sent no usage).
- A client that disconnects cancels the upstream call; what was delivered is still metered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from server.errors import GatewayError
from server.metering import charge_for, estimate_tokens, usage_from_openai
from server.money import credits_number
from server.snapshot import ModelEntry
from server.streaming.sse import DONE, encode
from server.types import Outcome, Usage


def _delivered_chars(chunk: dict[str, Any]) -> int:
    total = 0
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if isinstance(content, str):
            total += len(content)
        for call in delta.get("tool_calls") or ():
            arguments = (call.get("function") or {}).get("arguments")
            if isinstance(arguments, str):
                total += len(arguments)
    return total


class StreamRelay:
    def __init__(
        self,
        *,
        stream: Any,
        events: AsyncIterator[dict[str, Any]],
        first: dict[str, Any],
        include_usage: bool,
        model: ModelEntry,
        input_chars: int,
        outcome: Outcome,
        finish: Callable[[Outcome], Awaitable[None]],
        finish_nowait: Callable[[Outcome], None],
    ) -> None:
        self._stream = stream
        self._events = events
        self._first = first
        self._include_usage = include_usage
        self._model = model
        self._input_chars = input_chars
        self._outcome = outcome
        self._finish = finish
        self._finish_nowait = finish_nowait
        self._usage: Usage | None = None
        self._usage_chunk: dict[str, Any] | None = None
        self._delivered = 0
        self._recorded = False

    def _settle(self, status: str, http_status: int, error_code: str | None = None) -> Outcome:
        usage = self._usage
        if usage is None:
            usage = Usage(
                input_tokens=estimate_tokens(self._input_chars),
                output_tokens=estimate_tokens(self._delivered),
                estimated=True,
            )
        outcome = self._outcome
        outcome.status, outcome.http_status, outcome.error_code = status, http_status, error_code
        outcome.usage, outcome.charge = usage, charge_for(usage, self._model.rates)
        self._recorded = True
        return outcome

    def _pass_on(self, chunk: dict[str, Any]) -> bytes | None:
        """Tap usage; return the bytes to send, or None to hold the chunk back."""
        if chunk.get("usage"):
            self._usage = usage_from_openai(chunk["usage"])
            if not chunk.get("choices"):
                self._usage_chunk = chunk
                return None
        if not self._include_usage:
            chunk.pop("usage", None)
        self._delivered += _delivered_chars(chunk)
        return encode(chunk)

    async def run(self) -> AsyncIterator[bytes]:
        try:
            async for data in self._relay():
                yield data
        finally:
            if not self._recorded:  # the client went away (or we were cancelled) mid-stream
                self._finish_nowait(self._settle("client_disconnected", 499, "client_disconnected"))
            await self._close_upstream()

    async def _relay(self) -> AsyncIterator[bytes]:
        try:
            data = self._pass_on(self._first)
            if data is not None:
                yield data
            async for chunk in self._events:
                data = self._pass_on(chunk)
                if data is not None:
                    yield data
        except GatewayError as exc:
            try:
                await self._finish(self._settle("upstream_failed", 200, exc.code))
            except GatewayError:
                pass  # the error event below is the client's answer either way
            yield encode(exc.openai_body())
            return
        outcome = self._settle("ok", 200)
        try:
            await self._finish(outcome)
        except GatewayError as exc:
            yield encode(exc.openai_body())
            return
        if self._include_usage:
            yield encode(self._final_usage_chunk(outcome))
        yield DONE

    def _final_usage_chunk(self, outcome: Outcome) -> dict[str, Any]:
        assert outcome.usage is not None and outcome.charge is not None
        chunk = dict(self._usage_chunk or {"object": "chat.completion.chunk", "choices": []})
        chunk["choices"] = []
        usage = dict(chunk.get("usage") or {})
        if not usage:
            u = outcome.usage
            usage = {
                "prompt_tokens": u.input_tokens,
                "completion_tokens": u.output_tokens,
                "total_tokens": u.total_tokens,
            }
        usage["cost"] = credits_number(outcome.charge.micro)
        chunk["usage"] = usage
        return chunk

    async def _close_upstream(self) -> None:
        try:
            await self._stream.aclose()
        except Exception:  # the upstream connection may already be gone
            pass
