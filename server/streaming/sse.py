"""Incremental SSE parsing (bytes in, `data:` payloads out) and encoding. No regex surgery."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


def encode(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def encode_named(event: str, obj: Any) -> bytes:
    """An SSE frame with an event name (Anthropic and the Responses API name every event)."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


class EventTooLarge(ValueError):
    """One event (or one line) is larger than the caller allows."""


async def iter_data(chunks: AsyncIterator[bytes], max_event_bytes: int = 32 << 20) -> AsyncIterator[str]:
    """Yield each event's data (multi-line data joined by newlines); comments and ids are skipped. An event
    (or a line without its end) larger than `max_event_bytes` raises EventTooLarge: memory stays bounded."""
    buffer = b""
    data_lines: list[bytes] = []
    pending = 0
    async for chunk in chunks:
        buffer += chunk
        if len(buffer) + pending > max_event_bytes:
            raise EventTooLarge(f"a stream event larger than {max_event_bytes} bytes")
        while True:
            newline = buffer.find(b"\n")
            if newline < 0:
                break
            line = buffer[:newline].rstrip(b"\r")
            buffer = buffer[newline + 1 :]
            if not line:
                if data_lines:
                    yield b"\n".join(data_lines).decode()
                    data_lines = []
                    pending = 0
                continue
            if line.startswith(b"data:"):
                value = line[5:]
                data_lines.append(value[1:] if value.startswith(b" ") else value)
                pending += len(value)
    if buffer.strip().startswith(b"data:"):
        value = buffer.strip()[5:]
        data_lines.append(value[1:] if value.startswith(b" ") else value)
    if data_lines:
        yield b"\n".join(data_lines).decode()
