"""The running gateway's resources, owned by the app lifespan: settings, store, snapshot, providers, the
hot state (limiter, budgets, claims, cooldowns, cache: in memory, or on Redis for a fleet, server/state/),
and the request path built from them.

What the config drives (models, providers, router, plans, limits) is a `Generation` (server/generation.py)
that `reload` replaces; everything else (the store, budgets, keys and projects) lives as long as the
process."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from server.admission import Gatekeeper
from server.billing.ledger import LedgerChain, open_chain
from server.budget import Budgets, Hold, month_key, month_start_ms
from server.cache_policy import Caching
from server.clock import now_ms
from server.events.outbox import RateLimitedSampler
from server.files.service import Files
from server.files.signing import PURPOSE as URL_SIGNING
from server.files.signing import UrlSigner
from server.generation import Generation, Generations, build
from server.idempotency import Idempotency
from server.latency import LatencyBands
from server.limits import RateLimiter
from server.media.fetch import Fetcher
from server.media.jobs import JobRunner
from server.media.resolve import MediaRefs
from server.metering import Rates, charge, estimate
from server.metrics import Metrics
from server.pipeline import RequestPath
from server.providers.base import Provider
from server.realtime.sessions import OpenSessions
from server.request_log import BodyLog
from server.routing import ConnectionShares
from server.settings import Settings
from server.settlement import Settlement
from server.snapshot import Snapshot
from server.state import HotState
from server.state.changes import apply_change
from server.store.protocol import HOLD_JOB, HoldRecord, Interrupted, Recovery, Store
from server.store.select import make_blobs, make_store
from server.streaming.relay import OpenStreams
from server.types import Usage
from server.webhooks.service import Webhooks

if TYPE_CHECKING:  # redis-py is imported only when [state] url is set
    from server.state.budgets import SharedBudgets, Totals
    from server.state.limits import SharedRateLimiter

log = logging.getLogger("gateway")


def recovery(item: Interrupted) -> Recovery:
    """The restart rule for a request a crash left pending. A stream's intent was durable before its first
    byte, so it is billed what its intent and last checkpoint prove: input estimated from the body's size,
    output from the characters delivered (marked estimated), at the price card held with its reservation.
    A non-stream call never answered the client, so it is not billed; its hold is released. A realtime
    response is a stream billed by the estimate it checkpointed (its text and audio); the session's own row
    is not a stream and carries nothing."""
    ended = now_ms()
    if not item.stream:
        return Recovery(item, None, 0, ended)
    if item.checkpoint_usage is not None:  # a realtime response checkpoints its own estimate (text and audio)
        usage = Usage(item.checkpoint_usage, estimated=True)
    else:
        usage = estimate(item.body_bytes, item.delivered_chars or 0)
    return Recovery(item, usage, charge(usage, Rates.from_micro(item.price_card)).micro, ended)


async def store_totals(store: Store, zone: str) -> Totals:
    """This month's spend (by project, by key) and every wallet balance, from the store: what the shared
    budgets load when Redis has none (server/state/budgets.py)."""
    now = now_ms()
    since = month_start_ms(now, zone)
    by_project = {r["project"]: int(r["cost_micro"] or 0) for r in await store.usage_totals(since, "project")}
    by_key = {r["key"]: int(r["cost_micro"] or 0) for r in await store.usage_totals(since, "key")}
    balances = {r["id"]: int(r["balance_micro"]) for r in await store.ledger_states(now + 1)}
    return by_project, by_key, balances


@dataclass
class Gateway:
    store: Store
    snapshot: Snapshot
    generations: Generations
    budgets: Budgets | SharedBudgets
    limiter: RateLimiter | SharedRateLimiter
    latency: LatencyBands
    settlement: Settlement
    path: RequestPath
    chain: LedgerChain
    shares: ConnectionShares
    streams: OpenStreams
    idempotency: Idempotency
    webhooks: Webhooks
    metrics: Metrics
    files: Files
    media: MediaRefs
    fetcher: Fetcher
    jobs: JobRunner
    sessions: OpenSessions  # realtime sessions open now (server/realtime/sessions.py)
    state: HotState  # in memory, or shared by a fleet on Redis (server/state/)
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    started_ms: int = field(default_factory=now_ms)  # when this process started serving (usage tail's hello)
    stopping: bool = False  # a graceful stop began: /readyz says so, so balancers send no more
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one reload at a time

    @property
    def settings(self) -> Settings:
        """The settings in force (a reload replaces the parts the config drives)."""
        return self.generations.current.settings

    @property
    def providers(self) -> dict[str, Provider]:
        return self.generations.current.providers

    def needs_image_bytes(self, model: str) -> bool:
        """Whether a target of `model` is served by a provider that takes images only as bytes (Gemini), so
        remote image URLs in its requests are fetched by the gateway (under the outbound URL rules)."""
        generation = self.generations.current
        entry = generation.models.get(model)
        kinds = {generation.provider_settings[t.provider].kind for t in entry.targets} if entry else set()
        return "gemini" in kinds

    def swap(self, generation: Generation) -> Generation:
        """Put a new config generation in force in one synchronous step (no await: no request sees half)."""
        old = self.generations.swap(generation)
        self.snapshot.models = generation.models
        self.path.gatekeeper.plans = generation.plans
        self.path.gatekeeper.limits = generation.limits
        return old

    @classmethod
    async def start(cls, settings: Settings) -> Gateway:
        chain, rekey_from = open_chain(settings.ledger_key_path)
        store = make_store(settings, chain)
        zone = settings.billing.timezone
        now = now_ms()
        state = HotState.open(settings)
        holder: list[Gateway] = []
        state.listen(lambda message: apply_change(holder[0], message) if holder else None)  # before the load
        loaded = await store.open(month_start_ms(now, zone), recovery, rekey_from)
        if loaded.interrupted:
            billed = sum(1 for item in loaded.interrupted if item.stream)
            log.warning(
                "closed %d requests interrupted by a crash (%d streams billed for what they delivered)",
                len(loaded.interrupted),
                billed,
            )
        budgets = state.make_budgets(zone, month_key(now, zone), lambda: store_totals(store, zone))
        if state.shared:
            recovered = [(i.project_id, i.key_id, recovery(i).charge_micro) for i in loaded.interrupted if i.stream]
            await budgets.start((loaded.spend_project, loaded.spend_key, loaded.balances), recovered)
        else:
            budgets.spent_project, budgets.spent_key = loaded.spend_project, loaded.spend_key
            budgets.balances = loaded.balances
        job_holds: dict[str, tuple[Hold, HoldRecord]] = {}
        for held in loaded.open_holds:  # a job's or a session's reservation outlives the restart
            restored = budgets.restore(Hold(held.project_id, held.key_id, held.micro, held.wallet, held.id))
            if held.kind == HOLD_JOB:
                job_holds[held.id] = (restored, held)
        snapshot = Snapshot.build(settings, loaded)
        shares = ConnectionShares({})
        generations = Generations(build(settings, 1, shares, health=state.health))
        streams = OpenStreams()
        limiter = state.limiter()
        latency = LatencyBands()
        metrics = Metrics()
        store.on_commit(metrics.commit)
        metrics.watch(
            open_reservations=lambda: budgets.open_holds,
            queued_writes=lambda: store.queued_writes,
            health=lambda: (generations.current.router.health, generations.current.provider_settings),
        )
        fleet_lease = (lambda: store.hold_lease("webhooks")) if settings.store.shared else None
        webhooks = Webhooks(settings.webhooks, store.webhooks, fleet_lease)
        await webhooks.refresh()
        settlement = Settlement(store, budgets, metrics, webhooks.subscriptions.completed)
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
            generations=generations,
            settlement=settlement,
            latency=latency,
            streams=streams,
            bodies=BodyLog(store, settings.logging, loaded.body_bytes),
            caching=Caching(state.answer_cache(settings.cache.max_mb << 20)),  # type: ignore[arg-type]
            metrics=metrics,
        )
        blobs = make_blobs(settings)
        await blobs.open()
        files = Files(
            store.media,
            blobs,
            await state.storage_quota(store.media.storage_used),
            UrlSigner(chain.derive(URL_SIGNING), settings.files.url_ttl_s),
            settings.files,
            lambda: generations.current.plans,
        )
        fetcher = Fetcher(settings.files)
        jobs = JobRunner(path, store.media, files, snapshot, settings.jobs, job_holds, settings.store.shared)
        gateway = cls(
            store=store,
            snapshot=snapshot,
            generations=generations,
            budgets=budgets,
            limiter=limiter,
            latency=latency,
            settlement=settlement,
            path=path,
            chain=chain,
            shares=shares,
            streams=streams,
            idempotency=Idempotency(store, settings.idempotency.retention_hours, state.in_flight),
            webhooks=webhooks,
            metrics=metrics,
            files=files,
            media=MediaRefs(files, fetcher, settings.files.fetch_max_mb << 20),
            fetcher=fetcher,
            jobs=jobs,
            sessions=OpenSessions(settings.realtime, path),
            trusted_proxies=tuple(ipaddress.ip_network(c, strict=False) for c in settings.server.trusted_proxies),
            state=state,
        )
        holder.append(gateway)
        state.start(lambda: store.hold_lease("reconcile"), store.committed_totals)
        return gateway

    async def close(self) -> None:
        """Close the providers, then the store: the writer commits what is queued, the WAL is checkpointed
        and the database closed cleanly."""
        self.settlement.feed.close()
        await self.generations.close()
        await self.path.bodies.flush()
        if self.settlement.backlog:
            log.error(
                "%d outcomes could not be recorded before the stop (the store refused writes)", self.settlement.backlog
            )
        await self.state.close()
        await self.files.blobs.close()
        await self.store.close()
        log.info("store closed: every queued write committed, the WAL checkpointed")
