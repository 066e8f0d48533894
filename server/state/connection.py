"""One Redis connection pool per process, the Lua scripts it runs, and the fail-closed rule.

Why the synchronous redis-py client: every call site on the request path (`Gatekeeper.limit`,
`Budgets.reserve`, `Settlement.close`) is synchronous code on the event loop, one short Lua script per
step, and the sync client on one dedicated connection costs less CPU per call than redis.asyncio
(bench/state_cost.py measures both). The loop waits one round trip per check.

Failure behaviour: a connection error or timeout raises `Unavailable`; the request path turns it into
503 `metering_unavailable` with Retry-After (fail closed: nothing is admitted unmetered or unlimited).
After a failure the connection counts as down and every call fails at once, without touching the
network, while a probe thread pings Redis every `PROBE_S`; the first answer puts it back up. So a Redis
that does not answer (a black-holed host) stalls the loop at most once for `timeout_ms`, not per request,
and service resumes by itself when Redis returns.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import redis

from server.errors import METERING_UNAVAILABLE, GatewayError

log = logging.getLogger("gateway")
RETRY_S = 1.0  # the Retry-After a refused request gets
PROBE_S = 0.25  # while Redis is down, how often the probe thread pings it
PREFIX = "gw:"
# Redis's own clock in ms as `now`, so processes on several machines agree (scripts start with it).
CLOCK_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""


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


Ride = tuple[Script, Sequence[str], Sequence[Any]]  # a best-effort script call sent with the next one


def _together(client: redis.Redis, rides: list[Ride], script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """`rides` then the script, written at once on the client's one connection and read back in order: one
    round trip, and no more CPU than one call (redis-py's Pipeline object costs as much as a second call). A
    ride's failure is dropped (best effort); a script Redis forgot is loaded and run again on its own."""
    calls = [*rides, (script, keys, args)]
    for each, _, _ in calls:
        if not each.sha:
            each.sha = client.script_load(each.source)
    conn = client.connection
    assert conn is not None  # single_connection_client
    replies: list[Any] = []
    with client.single_connection_lock:
        try:
            conn.send_packed_command(
                conn.pack_commands([("EVALSHA", each.sha, len(k), *k, *a) for each, k, a in calls])
            )
            for _ in calls:
                try:
                    replies.append(conn.read_response())
                except redis.exceptions.ResponseError as exc:  # read whole: the connection stays in step
                    replies.append(exc)
        except BaseException:
            conn.disconnect()  # a half-read connection must not be reused
            raise
    for (each, each_keys, each_args), reply in zip(calls[:-1], replies[:-1], strict=True):
        if isinstance(reply, redis.exceptions.NoScriptError):
            each.sha = ""
            each.run(client, each_keys, each_args)
        elif isinstance(reply, Exception):
            log.warning("a best-effort redis script failed: %r", reply)
    reply = replies[-1]
    if isinstance(reply, redis.exceptions.NoScriptError):
        script.sha = ""
        return script.run(client, keys, args)
    if isinstance(reply, Exception):
        raise reply
    return reply


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
        self._timeout = timeout
        self._down = False
        self._probe: threading.Thread | None = None
        self._closed = threading.Event()
        self._riders: list[Callable[[], Ride | None]] = []
        self.failures = 0  # calls that found Redis out of reach (for logs and tests)

    def unique(self) -> str:
        """An id unique across the fleet (rate-limit entries, claim tokens)."""
        return f"{self.instance}-{next(self._ids)}"

    @property
    def up(self) -> bool:
        return not self._down

    def ride(self, waiting: Callable[[], Ride | None]) -> None:
        """Register a source of best-effort calls (token corrections): what `waiting()` returns is sent in the
        same round trip as the next script, not in one of its own."""
        self._riders.append(waiting)

    def run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        rides = [ride for ride in (waiting() for waiting in self._riders) if ride is not None]
        if rides:
            return self.call(_together, self.client, rides, script, keys, args)
        return self.call(script.run, self.client, keys, args)

    def call(self, fn: Any, *args: Any) -> Any:
        if self._down:
            raise Unavailable("redis is unreachable (a probe is waiting for it)")
        try:
            return fn(*args)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            self.failures += 1
            self._went_down(exc)
            raise Unavailable(str(exc)) from exc

    def _went_down(self, exc: BaseException) -> None:
        if self._down:
            return
        self._down = True
        log.error("redis at %s unreachable: %s; refusing metered calls until it answers", self.url, exc)
        self._probe = threading.Thread(target=self._wait_for_redis, name="redis-probe", daemon=True)
        self._probe.start()

    def _wait_for_redis(self) -> None:
        probe = redis.Redis.from_url(self.url, socket_timeout=self._timeout, socket_connect_timeout=self._timeout)
        try:
            while not self._closed.wait(PROBE_S):
                try:
                    probe.ping()
                except (redis.exceptions.RedisError, OSError):
                    continue
                log.warning("redis at %s answers again", self.url)
                self._down = False
                return
        finally:
            probe.close()

    def close(self) -> None:
        self._closed.set()
        self.client.close()
