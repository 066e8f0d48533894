"""The hot state: what the request path keeps between requests, behind one seam with two implementations.

| concern                      | in memory (the default)          | shared by a fleet (`[state] url`)     |
|------------------------------|----------------------------------|---------------------------------------|
| rate-limit windows           | server/limits.py `RateLimiter`   | server/state/limits.py (one Lua)      |
| budget and wallet holds      | server/budget.py `Budgets`       | server/state/budgets.py (Lua, TTLs)   |
| idempotency keys in flight   | server/idempotency.py            | server/state/claims.py (SET NX PX)    |
| provider cooldowns           | server/routing.py                | server/state/cooldowns.py             |
| the answer cache             | server/answer_cache.py           | server/state/cache.py                 |
| the storage quota (files)    | server/files/quota.py            | server/state/storage.py (Lua, TTLs)   |
| invalidation (keys, plans)   | nothing to do: one snapshot      | server/state/invalidation.py (pub/sub)|
| totals vs the store          | nothing to do: one process       | server/state/reconcile.py (a lease)   |

`HotState` builds the right ones from the settings; the memory side is exactly what a single process ran
before (same objects, same speed). The shared side also runs a keep-alive task (it renews this process's
holds and idempotency claims and sends what an outage held back) and, under a lease, the reconciliation of
Redis's budget totals with the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from server.answer_cache import AnswerCache
from server.budget import Budgets
from server.files.quota import Quota, StorageQuota
from server.idempotency import InFlight, LocalInFlight
from server.limits import RateLimiter
from server.routing import ProviderHealth
from server.settings import RoutingSettings, Settings

if TYPE_CHECKING:  # the shared side (and redis-py) is imported only when [state] url is set
    from server.state.budgets import SharedBudgets, Totals
    from server.state.cache import SharedAnswerCache
    from server.state.connection import Connection
    from server.state.invalidation import Bus
    from server.state.limits import SharedRateLimiter
    from server.state.reconcile import ReadCommitted

log = logging.getLogger("gateway")


@dataclass
class HotState:
    """Factories and handles for the hot state; `connection` is None in memory."""

    settings: Settings
    connection: Connection | None = None
    bus: Bus | None = None
    budgets: Budgets | SharedBudgets | None = None
    in_flight: InFlight = field(default_factory=LocalInFlight)
    quota: Quota | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def open(cls, settings: Settings) -> HotState:
        if not settings.state.shared:
            return cls(settings)
        from server.state.claims import SharedInFlight
        from server.state.connection import Connection

        connection = Connection(settings.state.url, settings.state.timeout_ms)
        return cls(settings, connection, in_flight=SharedInFlight(connection, settings.state.hold_ttl_s))

    @property
    def shared(self) -> bool:
        return self.connection is not None

    def reachable(self) -> bool:
        """Whether the hot state can be used now (always in memory; a PING, or fail fast, on Redis)."""
        if self.connection is None:
            return True
        from server.state.connection import Unavailable

        try:
            self.connection.call(self.connection.client.ping)
        except Unavailable:
            return False
        return True

    def limiter(self) -> RateLimiter | SharedRateLimiter:
        if self.connection is None:
            return RateLimiter()
        from server.state.limits import SharedRateLimiter

        return SharedRateLimiter(self.connection)

    def make_budgets(self, zone: str, month: str, load: Callable[[], Awaitable[Totals]]) -> Budgets | SharedBudgets:
        if self.connection is None:
            self.budgets = Budgets(zone=zone, month=month)
        else:
            from server.state.budgets import SharedBudgets

            self.budgets = SharedBudgets(self.connection, zone, self.settings.state.hold_ttl_s, load)
        return self.budgets

    async def storage_quota(self, load: Callable[[], Awaitable[dict[str, int]]]) -> Quota:
        """The files' storage quota, its bytes in use loaded from the store (`load`: by project)."""
        if self.connection is None:
            self.quota = StorageQuota(await load())
            return self.quota
        from server.state.storage import SharedStorageQuota

        shared = SharedStorageQuota(self.connection, self.settings.state.hold_ttl_s, load)
        await shared.start()
        self.quota = shared
        return shared

    def health(self, routing: RoutingSettings) -> ProviderHealth:
        if self.connection is None:
            return ProviderHealth(routing)
        from server.state.cooldowns import SharedHealth

        return SharedHealth(routing, self.connection, self._announce_cooldown)

    def answer_cache(self, max_bytes: int) -> AnswerCache | SharedAnswerCache:
        if self.connection is None:
            return AnswerCache(max_bytes)
        from server.state.cache import SharedAnswerCache

        return SharedAnswerCache(self.connection, max_bytes)

    def _announce_cooldown(self, provider: str, seconds: float) -> None:
        if self.bus is not None:
            self.bus.publish({"op": "cool", "provider": provider, "until": time.time() + seconds})

    def listen(self, apply: Callable[[dict[str, Any]], None]) -> None:
        """Create the invalidation bus and note the log's position (before the store is loaded)."""
        if self.connection is not None:
            from server.state.invalidation import Bus

            self.bus = Bus(self.connection, apply)
            self.bus.mark()

    def publish(self, message: dict[str, Any]) -> None:
        """Tell the other processes of a change this one made (nothing to do in memory)."""
        if self.bus is not None:
            self.bus.publish(message)

    def start(self, lease: Callable[[], Awaitable[bool]], read: ReadCommitted) -> None:
        """Start the listener, the keep-alive and the reconciliation of the budget totals with the store (while
        this process holds the `lease`; `read` gives the store's side), from the running event loop."""
        if self.connection is None:
            return
        from server.state.budgets import SharedBudgets
        from server.state.reconcile import keep_reconciling

        assert self.bus is not None and isinstance(self.budgets, SharedBudgets)
        self.bus.start()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._keep_alive()))
        period = self.settings.state.reconcile_s
        self._tasks.append(loop.create_task(keep_reconciling(self.budgets, read, lease, period)))

    async def _keep_alive(self) -> None:
        interval = self.settings.state.hold_ttl_s / 3
        while True:
            await asyncio.sleep(interval)
            self.renew()

    def renew(self) -> None:
        """Renew holds, claims and upload reservations; send what an outage held back (each step retried on
        the next tick)."""
        from server.state.connection import Unavailable

        try:
            for holder in (self.budgets, self.in_flight, self.quota):
                renew = getattr(holder, "renew", None)
                if renew is not None:
                    renew()
            if self.bus is not None:
                self.bus.flush()
        except Unavailable:
            pass
        except Exception:
            log.exception("renewing the hot state failed")

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.bus is not None:
            await self.bus.stop()
        if self.connection is not None:
            self.connection.close()
