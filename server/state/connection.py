"""One Redis connection pool per process, the Lua scripts it runs, and the fail-closed rule.

Why the synchronous redis-py client: every call site on the request path (`Gatekeeper.limit`,
`Budgets.reserve`, `Settlement.close`) is synchronous code on the event loop, and a round trip to a
Redis on the same host or LAN costs ~40-120 µs with the sync client against ~150-300 µs of CPU with the
asyncio one (bench/state_cost.py measures both). The loop is blocked for one round trip per check; a
Redis that does not answer blocks it at most `timeout_ms`, and then the breaker below refuses at once
for `RETRY_S` instead of waiting again, so an outage costs one timeout per second, not one per request.

Failure behaviour: a connection error or timeout raises `Unavailable`; the request path turns it into
503 `metering_unavailable` with Retry-After (fail closed: nothing is admitted unmetered or unlimited).
Until the breaker's pause is over every call fails fast; the first call after it tries Redis again, so
service resumes by itself when Redis returns.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import redis

from server.errors import METERING_UNAVAILABLE, GatewayError

log = logging.getLogger("gateway")
RETRY_S = 1.0  # after a failure, calls fail fast this long before Redis is tried again
PREFIX = "gw:"


class Unavailable(Exception):
    """Redis could not be reached (or did not answer in time)."""


def refused() -> GatewayError:
    """The 503 a request gets while the shared state is out of reach."""
    error = METERING_UNAVAILABLE()
    error.headers = {"retry-after": str(int(RETRY_S))}
    return error


class Script:
    """A Lua script run by its SHA (EVALSHA), loaded again when Redis forgot it (a restart)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = ""

    def run(self, client: redis.Redis, keys: Sequence[str], args: Sequence[Any]) -> Any:
        if not self.sha:
            self.sha = client.script_load(self.source)
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            self.sha = client.script_load(self.source)
            return client.evalsha(self.sha, len(keys), *keys, *args)


class Connection:
    """The process's Redis client with a breaker; `run` and `call` raise `Unavailable` when it is down."""

    def __init__(self, url: str, timeout_ms: int) -> None:
        timeout = timeout_ms / 1000
        self.url = url
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=0,
            single_connection_client=True,
        )
        self.instance = f"{os.getpid()}-{os.urandom(4).hex()}"  # this process, in member names and messages
        self._ids = itertools.count(1)
        self._down_until = 0.0
        self.failures = 0  # calls that found Redis out of reach (for logs and tests)

    def unique(self) -> str:
        """An id unique across the fleet (rate-limit entries, claim tokens)."""
        return f"{self.instance}-{next(self._ids)}"

    @property
    def up(self) -> bool:
        return time.monotonic() >= self._down_until

    def run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return self.call(script.run, self.client, keys, args)

    def call(self, fn: Any, *args: Any) -> Any:
        if time.monotonic() < self._down_until:
            raise Unavailable("redis is unreachable (retrying shortly)")
        try:
            return fn(*args)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            self.failures += 1
            if self.up:
                log.error("redis at %s unreachable: %s; refusing metered calls for %.0f s", self.url, exc, RETRY_S)
            self._down_until = time.monotonic() + RETRY_S
            raise Unavailable(str(exc)) from exc

    def close(self) -> None:
        self.client.close()
