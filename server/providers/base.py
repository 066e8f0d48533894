"""The Provider protocol every upstream kind implements.

Exceptions: every failure surfaces as `server.errors.UpstreamError` with `retryable` set for connect
errors, timeouts, 429 and 5xx (the next target is tried) and unset for other 4xx (returned as is).
A stream that ends before its terminal event raises UpstreamError from the iterator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol


class ChatStream(Protocol):
    """An opened upstream stream: parsed OpenAI chunk dicts, in order; raises on a broken stream."""

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]: ...

    async def aclose(self) -> None: ...


class Provider(Protocol):
    name: str

    async def chat(self, model: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def chat_stream(self, model: str, body: dict[str, Any]) -> ChatStream: ...

    async def embeddings(self, model: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...
