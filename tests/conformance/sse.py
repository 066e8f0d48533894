"""Server-sent events as a client reads them off the wire: a complete body in, events out.

Written independently of the gateway's own `server/streaming/sse.py` on purpose: the tier judges what
the server emits, so it must not share the server's reading of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

DONE = "[DONE]"


@dataclass(frozen=True)
class SseEvent:
    """One event: its `event:` name (None when unnamed) and its `data:` lines joined by newlines."""

    name: str | None
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def parse(body: str) -> list[SseEvent]:
    """Every event in `body` (blank-line separated; comments, ids and retry lines ignored)."""
    events: list[SseEvent] = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        name: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        if data:
            events.append(SseEvent(name, "\n".join(data)))
    return events
