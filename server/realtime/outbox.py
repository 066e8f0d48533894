"""The events waiting for a realtime client, bounded in bytes (audio events are large and their count says
little): `put` waits while `limit_bytes` are queued, so a slow client pauses the upstream pump instead of
growing the server's memory. One event always fits, whatever its size (it is already in memory)."""

from __future__ import annotations

import asyncio
from collections import deque


class Outbox:
    def __init__(self, limit_bytes: int) -> None:
        self._limit = limit_bytes
        self._items: deque[str] = deque()
        self.queued_bytes = 0
        self._ready = asyncio.Event()  # something to take
        self._room = asyncio.Event()  # below the limit
        self._room.set()

    def empty(self) -> bool:
        return not self._items

    async def put(self, text: str) -> None:
        while self.queued_bytes >= self._limit:
            self._room.clear()
            await self._room.wait()
        self._items.append(text)
        self.queued_bytes += len(text)
        self._ready.set()

    async def get(self) -> str:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        text = self._items.popleft()
        self.queued_bytes -= len(text)
        if self.queued_bytes < self._limit:
            self._room.set()
        return text

    def clear(self) -> None:
        """Drop what waits (the client is gone) and let a waiting `put` through."""
        self._items.clear()
        self.queued_bytes = 0
        self._room.set()
