"""The realtime front door as the request path sees one response: what a `response.create` declares.

Each response of a session goes through `RequestPath.start` like any call (scopes, the plan's
`rpm.realtime` and the key's limits, the reservation, the intent). Its worst case is the response's output
cap (its own `max_output_tokens`, else the session's, else the configured default, which is then written
into the event sent upstream so the reservation is a real bound) and, as input, the conversation so far
bounded by the model's context window (`input_bound`, kept current by the session). Both may be audio, so
the reservation prices them at the dearer of the audio and text rates (metering.reservation).

A session has one dialect object (it knows the session's cap and output modalities); the unary and SSE
methods of other front doors do not exist for realtime and refuse if called.
"""

from __future__ import annotations

from typing import Any

from server.dialects.base import Dialect
from server.errors import INTERNAL_ERROR, INVALID_TYPE
from server.metering import Declared
from server.providers.base import Provider
from server.realtime.events import MAX_OUTPUT_TOKENS, audio_output, output_cap
from server.streaming.relay import StreamAdapter
from server.types import Usage


class RealtimeDialect(Dialect):
    name = "realtime"
    capability = "realtime"

    def __init__(self) -> None:
        self.session: dict[str, Any] = {}  # the upstream's latest session object (session.created/updated)
        self.input_bound = 0  # tokens the conversation may hold now (kept current by the session)

    def declare(self, body: dict[str, Any]) -> Declared:
        options = body.get("response")
        if options is not None and not isinstance(options, dict):
            raise INVALID_TYPE(field="response", what="an object")
        cap = output_cap(options, "response")
        if cap is None:
            cap = output_cap(self.session, "session")
        return Declared(output_cap=cap, input_bound=self.input_bound, audio=audio_output(self.session, options))

    def cap_output(self, body: dict[str, Any], cap: int) -> None:
        options = body.get("response")
        options = dict(options) if isinstance(options, dict) else {}
        options["max_output_tokens"] = min(cap, MAX_OUTPUT_TOKENS)  # the field's name in GA and beta alike
        body["response"] = options

    # Realtime has no unary or SSE form: nothing calls these for a response.

    def delivered_chars(self, answer: dict[str, Any]) -> int:
        return 0

    async def unary(self, provider: Provider, model: str, body: dict[str, Any]) -> tuple[dict[str, Any], Usage | None]:
        raise INTERNAL_ERROR()

    async def open(self, provider: Provider, model: str, body: dict[str, Any]) -> Any:
        raise INTERNAL_ERROR()

    def adapter(self, body: dict[str, Any], provider: Provider) -> StreamAdapter:
        raise INTERNAL_ERROR()

    def present(self, answer: dict[str, Any], usage: Usage, charge_micro: int) -> None:
        raise INTERNAL_ERROR()
