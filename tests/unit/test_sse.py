"""SSE parsing across arbitrary chunk boundaries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from server.streaming.sse import encode, iter_data


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _parse(data: bytes, size: int) -> list[str]:
    async def collect() -> list[str]:
        return [item async for item in iter_data(_chunks(data, size))]

    return asyncio.run(collect())


def test_events_survive_any_split() -> None:
    stream = encode({"a": 1}) + b": comment\r\n\r\n" + b"data: line1\ndata: line2\n\n" + b"data: [DONE]\n\n"
    for size in (1, 2, 3, 7, 64, 1000):
        assert _parse(stream, size) == ['{"a":1}', "line1\nline2", "[DONE]"]


def test_trailing_event_without_blank_line_is_still_seen() -> None:
    assert _parse(b"data: {}\n\ndata: tail", 4) == ["{}", "tail"]
