"""Invalidation across a fleet: an admin change made on one process reaches every other within
milliseconds (the bound promised is 1 s), over Redis pub/sub.

Why Redis pub/sub rather than PostgreSQL LISTEN/NOTIFY: every process already holds a Redis connection
for the hot state, and it is the hot state that must change (a revoked key must be refused by the next
check on every process); pub/sub needs no store-specific code, so it works whatever store is configured,
and it keeps a notification out of the store's write transactions (NOTIFY is queued per transaction and
would tie the writer's group commit to the listeners). Its one weakness, at-most-once delivery to a
process that was disconnected, is covered by a log: each message is also appended to a capped Redis
stream, and a process that (re)subscribes first replays what it missed since the last id it applied.

A message carries the changed entry whole (a key's scopes, hashes and dates; a project's fields; a
provider cooldown), so a receiver applies it without reading the store. Applying is idempotent and in log
order, so replaying a suffix of the log on top of newer state converges to the newest state.

Failure behaviour: a message that cannot be sent (Redis down) is kept and sent when Redis answers again;
the change itself is already in the store and in force on the process that made it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson
import redis.asyncio as aioredis

from server.state.connection import PREFIX, Connection, Script, Unavailable

log = logging.getLogger("gateway")
CHANNEL = PREFIX + "invalidate"
LOG_LENGTH = 10_000  # messages kept for processes that reconnect
PUBLISH = Script(
    """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'm', ARGV[1])
redis.call('PUBLISH', KEYS[1], id .. ' ' .. ARGV[1])
return id
"""
)


def _stream_id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class Bus:
    """Publish changes; apply the other processes' changes with `apply(message)`."""

    def __init__(self, connection: Connection, apply: Callable[[dict[str, Any]], None]) -> None:
        self._connection = connection
        self._apply = apply
        self._unsent: list[bytes] = []
        self._last = "0-0"  # the last log id applied (or known to be in the store we loaded)
        self.applied = 0
        self.task: asyncio.Task[None] | None = None

    def mark(self) -> None:
        """Before the store is loaded: everything logged after now is applied on top of what it holds."""
        try:
            found = self._connection.call(self._connection.client.xrevrange, CHANNEL, "+", "-", 1)
        except Unavailable:
            return  # replay the whole log once connected: applying is idempotent
        if found:
            self._last = found[0][0].decode()

    def publish(self, message: dict[str, Any]) -> None:
        data = orjson.dumps({**message, "from": self._connection.instance})
        self._unsent.append(data)
        self.flush()

    def flush(self) -> None:
        """Send what waits (called again by the keep-alive after an outage)."""
        while self._unsent:
            try:
                self._connection.run(PUBLISH, (CHANNEL,), (self._unsent[0], LOG_LENGTH))
            except Unavailable:
                log.error("invalidation not sent yet (redis unreachable): %d waiting", len(self._unsent))
                return
            self._unsent.pop(0)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._listen())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):
                pass

    async def _listen(self) -> None:
        """Subscribe, replay the log since the last applied id, then apply messages as they come; on any
        connection loss start over after a short pause."""
        while True:
            client = aioredis.Redis.from_url(self._connection.url, health_check_interval=5)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    await pubsub.get_message(timeout=1.0)  # the subscribe confirmation: now nothing is missed
                    for ident, fields in await client.xrange(CHANNEL, f"({self._last}", "+"):
                        self._receive(ident.decode(), fields[b"m"])
                    async for item in pubsub.listen():
                        if item.get("type") != "message":
                            continue
                        ident, _, data = item["data"].partition(b" ")
                        self._receive(ident.decode(), data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("invalidation listener lost redis (%s); reconnecting", exc)
            finally:
                await client.aclose()
            await asyncio.sleep(0.2)

    def _receive(self, ident: str, data: bytes) -> None:
        if _stream_id(ident) <= _stream_id(self._last):
            return  # already applied (replayed from the log)
        self._last = ident
        message = orjson.loads(data)
        if message.get("from") == self._connection.instance:
            return  # this process made the change and applied it already
        try:
            self._apply(message)
            self.applied += 1
        except Exception:
            log.exception("invalidation %s not applied", message.get("op"))
