"""The running gateway's resources, owned by the app lifespan: settings, store, snapshot, providers, the
in-memory limiter and budgets, and the request path built from them."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from server.admission import Gatekeeper
from server.billing.ledger import LedgerChain, open_chain
from server.budget import Budgets, Hold, month_key, month_start_ms
from server.clock import now_ms
from server.events.outbox import RateLimitedSampler
from server.latency import LatencyBands
from server.limits import RateLimiter
from server.metering import Rates, charge, estimate
from server.pipeline import RequestPath
from server.providers.base import Provider
from server.providers.registry import build_providers
from server.routing import ConnectionShares, Router
from server.settings import Settings
from server.settlement import Settlement
from server.snapshot import Snapshot
from server.store.protocol import Interrupted, Recovery, Store
from server.store.sqlite.store import SqliteStore
from server.webhooks.service import Webhooks

log = logging.getLogger("gateway")


def recovery(item: Interrupted) -> Recovery:
    """The restart rule for a request a crash left pending. A stream's intent was durable before its first
    byte, so it is billed what its intent and last checkpoint prove: input estimated from the body's size,
    output from the characters delivered (marked estimated), at the price card held with its reservation.
    A non-stream call never answered the client, so it is not billed; its hold is released."""
    ended = now_ms()
    if not item.stream:
        return Recovery(item, None, 0, ended)
    usage = estimate(item.body_bytes, item.delivered_chars or 0)
    return Recovery(item, usage, charge(usage, Rates.from_micro(item.price_card)).micro, ended)


@dataclass
class Gateway:
    settings: Settings
    store: Store
    snapshot: Snapshot
    providers: dict[str, Provider]
    budgets: Budgets
    limiter: RateLimiter
    latency: LatencyBands
    router: Router
    settlement: Settlement
    path: RequestPath
    chain: LedgerChain
    webhooks: Webhooks
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    async def start(cls, settings: Settings) -> Gateway:
        chain, rekey_from = open_chain(settings.ledger_key_path)
        store = SqliteStore(settings.database_path, settings.storage, chain)
        zone = settings.billing.timezone
        now = now_ms()
        loaded = await store.open(month_start_ms(now, zone), recovery, rekey_from)
        if loaded.interrupted:
            billed = sum(1 for item in loaded.interrupted if item.stream)
            log.warning(
                "closed %d requests interrupted by a crash (%d streams billed for what they delivered)",
                len(loaded.interrupted),
                billed,
            )
        budgets = Budgets(
            zone=zone,
            month=month_key(now, zone),
            spent_project=loaded.spend_project,
            spent_key=loaded.spend_key,
            balances=loaded.balances,
        )
        for held in loaded.open_holds:  # a job's or a session's reservation outlives the restart
            budgets.restore(Hold(held.project_id, held.key_id, held.micro, held.wallet, held.id))
        snapshot = Snapshot.build(settings, loaded)
        providers = build_providers(settings.providers)
        shares = ConnectionShares({p.name: p.project_share for p in settings.providers})
        router = Router(providers, settings.routing, shares)
        limiter = RateLimiter()
        latency = LatencyBands()
        webhooks = Webhooks(settings.webhooks, store.webhooks)
        await webhooks.refresh()
        settlement = Settlement(store, budgets, webhooks.subscriptions.completed)
        gatekeeper = Gatekeeper(
            snapshot=snapshot,
            limiter=limiter,
            limits=settings.limits,
            plans=settings.plans,
            sampler=RateLimitedSampler(settings.limits.rate_limited_event_interval_seconds),
            emit=store.add_events,
        )
        path = RequestPath(
            gatekeeper=gatekeeper,
            budgets=budgets,
            store=store,
            router=router,
            settlement=settlement,
            latency=latency,
            limits=settings.limits,
            providers={p.name: p for p in settings.providers},
        )
        return cls(
            settings=settings,
            store=store,
            snapshot=snapshot,
            providers=providers,
            budgets=budgets,
            limiter=limiter,
            latency=latency,
            router=router,
            settlement=settlement,
            path=path,
            chain=chain,
            webhooks=webhooks,
            trusted_proxies=tuple(ipaddress.ip_network(c, strict=False) for c in settings.server.trusted_proxies),
        )

    async def close(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()
        await self.store.close()
