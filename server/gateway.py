"""The running gateway's resources, owned by the app lifespan: settings, store, snapshot, providers,
and the in-memory limiter and budgets the hot path checks."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field

from server.budget import Budgets, month_key, month_start_ms
from server.clock import now_ms
from server.events.outbox import RateLimitedSampler
from server.latency import LatencyBands
from server.limits import RateLimiter
from server.providers.base import Provider
from server.providers.registry import build_providers
from server.routing import ProviderHealth
from server.settings import RoutingSettings, Settings
from server.snapshot import Snapshot
from server.store.sqlite.store import SqliteStore

log = logging.getLogger("gateway")


@dataclass
class Gateway:
    settings: Settings
    store: SqliteStore
    snapshot: Snapshot
    providers: dict[str, Provider]
    budgets: Budgets
    limiter: RateLimiter = field(default_factory=RateLimiter)
    latency: LatencyBands = field(default_factory=LatencyBands)
    rate_limited_sampler: RateLimitedSampler = field(default_factory=lambda: RateLimitedSampler(60))
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    health: ProviderHealth = field(default_factory=lambda: ProviderHealth(RoutingSettings()))

    @classmethod
    async def start(cls, settings: Settings) -> Gateway:
        store = SqliteStore(settings.database_path, settings.storage)
        zone = settings.billing.timezone
        now = now_ms()
        loaded = await store.open(month_start_ms(now, zone))
        if loaded["interrupted"]:
            log.warning("closed %d requests interrupted by a crash", loaded["interrupted"])
        budgets = Budgets(
            zone=zone,
            month=month_key(now, zone),
            spent_project=loaded["spend_project"],
            spent_key=loaded["spend_key"],
            balances=loaded["balances"],
        )
        return cls(
            settings=settings,
            store=store,
            snapshot=Snapshot.build(settings, loaded),
            providers=build_providers(settings.providers),
            budgets=budgets,
            rate_limited_sampler=RateLimitedSampler(settings.limits.rate_limited_event_interval_seconds),
            health=ProviderHealth(settings.routing),
            trusted_proxies=tuple(ipaddress.ip_network(c, strict=False) for c in settings.server.trusted_proxies),
        )

    async def close(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()
        await self.store.close()
