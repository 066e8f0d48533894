"""Prometheus metrics of one running gateway, in a registry of its own (never the process-wide default, so
several apps in one interpreter, as in the in-process tests, do not collide).

Counters move where a fact is settled once: a call's outcome in `Settlement.close` (requests, tokens,
spend, fallbacks, upstream attempts), a refusal in `RequestPath.admit` (the key) or `start` (scopes,
limits, budget), the answer's overhead where the pipeline hands it over. Gauges that mirror state (open
reservations, queued writes, providers cooling down) are read at scrape time, so the request path pays
nothing for them. A call costs a few dictionary updates and two histogram observations (a few µs:
bench/metrics_cost.py).

Labels are bounded: `model` is a configured public model name (a name a client made up is `unknown`;
calls without a model are `none`), `endpoint` a front door (chat, embeddings, responses, messages,
gemini, realtime: one per response), `status` an outcome status or `refused`, `provider` a configured
provider name, `code` a row of the error table. No request, key or project id ever becomes a label.

The cache calls `gateway.metrics.cache_lookup("hit" | "miss" | "bypass")` once per cacheable request (the
`x-cache-status` it answers), on the event loop's thread; other values are ignored, so a label can never
grow from input.

Failure behaviour: recording never raises into a request (label values are checked here, not by the
client library); a scrape-time reading that raises fails that scrape only, never a request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from server.routing import NOT_UPSTREAM, ProviderHealth
from server.types import Attempt, Outcome, Target

UNKNOWN_MODEL, NO_MODEL = "unknown", "none"
REFUSED = "refused"
CACHE_RESULTS = frozenset({"hit", "miss", "bypass"})

# Seconds. The gateway's own share of a call is around a millisecond; upstream calls run to minutes.
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class Metrics:
    """The gateway's metrics; `exposition()` renders them in Prometheus' text format."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self._requests = _Tally(
            "gateway_requests",
            "Calls by public model, front door and outcome (ok, error, upstream_failed, client_disconnected, refused).",
            ("model", "endpoint", "status"),
        )
        self._refusals = _Tally("gateway_refusals", "Calls refused before forwarding, by error code.", ("code",))
        self._tokens = _Tally(
            "gateway_tokens", "Metered tokens by public model and kind (input includes cached).", ("model", "kind")
        )
        self._spend = _Tally("gateway_spend_micro", "Charges in micro-units of currency, by public model.", ("model",))
        self._fallbacks = _Tally("gateway_fallbacks", "Calls answered by another target than the first.", ("model",))
        self._cache = _Tally("gateway_cache_lookups", "Cache lookups by result (hit, miss, bypass).", ("result",))
        registry.register(
            _Tallies((self._requests, self._refusals, self._tokens, self._spend, self._fallbacks, self._cache))
        )
        self._overhead = _Children(
            Histogram(
                "gateway_overhead_seconds",
                "Time the gateway itself spent on a call (arrival to answer, minus upstream attempts); for a"
                " stream, to its first byte.",
                ("endpoint", "mode"),
                buckets=OVERHEAD_BUCKETS,
                registry=registry,
            )
        )
        self._upstream = _Children(
            Histogram(
                "gateway_upstream_seconds",
                "Upstream attempts by provider: to the whole answer, or to the first event of a stream.",
                ("provider",),
                buckets=UPSTREAM_BUCKETS,
                registry=registry,
            )
        )
        self._commit = Histogram(
            "gateway_store_commit_seconds",
            "Group commits of the store's writer (one transaction, one fsync).",
            buckets=COMMIT_BUCKETS,
            registry=registry,
        )

    def watch(
        self,
        *,
        open_reservations: Callable[[], float],
        queued_writes: Callable[[], float],
        health: Callable[[], tuple[ProviderHealth, Iterable[str]]],
    ) -> None:
        """Read these at scrape time: reservations held, writes queued, and the current router's providers."""
        Gauge(
            "gateway_open_reservations", "Budget reservations (holds) open now.", registry=self.registry
        ).set_function(open_reservations)
        Gauge(
            "gateway_store_queued_writes", "Writes waiting for the store's writer now.", registry=self.registry
        ).set_function(queued_writes)
        self.registry.register(_Cooldowns(health))

    def closed(self, model: str, endpoint: str, outcome: Outcome, first: Target | None) -> None:
        """Count one call's outcome: its status, tokens, spend, upstream attempts, and a fallback when a
        target other than the model's `first` answered (what `x-fallback-depth` says)."""
        label = model or NO_MODEL
        self._requests.add((label, endpoint, outcome.status))
        usage = outcome.usage
        if usage is not None:
            quantities = usage.quantities
            for kind, unit in _TOKEN_KINDS:
                amount = quantities.get(unit)
                if amount:
                    self._tokens.add((label, kind), amount)
        if outcome.charge is not None and outcome.charge.micro:
            self._spend.add((label,), outcome.charge.micro)
        for attempt in outcome.attempts:
            if attempt.status not in NOT_UPSTREAM:
                self._upstream(attempt.target.partition(":")[0]).observe(attempt.latency_ms / 1000)
        if outcome.target is not None and first is not None and outcome.target != first:
            self._fallbacks.add((label,))

    def refused(self, code: str | None, model: str | None = None, endpoint: str | None = None) -> None:
        """Count a refusal by its error code; one of a call (its key accepted, nothing forwarded) also counts
        as a request of that model (already bounded by the caller) and front door."""
        self._refusals.add((code or "unknown",))
        if model is not None and endpoint is not None:
            self._requests.add((model, endpoint, REFUSED))

    def answered(self, endpoint: str, stream: bool, started: float, attempts: list[Attempt]) -> None:
        """The gateway's own time on a call: since `started` (perf_counter at arrival), less its upstream
        attempts (retry backoff waits count as the gateway's). A call that did not arrive over HTTP (0) is skipped."""
        if not started:
            return
        upstream = sum(attempt.latency_ms for attempt in attempts) / 1000
        spent = time.perf_counter() - started - upstream
        self._overhead(endpoint, "stream" if stream else "unary").observe(max(spent, 0.0))

    def commit(self, seconds: float) -> None:
        """One group commit of the store's writer (called from the writer's thread)."""
        self._commit.observe(seconds)

    def cache_lookup(self, result: str) -> None:
        """The cache's hook: one lookup, `hit`, `miss` or `bypass` (any case); other values are ignored. Call it
        on the event loop's thread, like every counter here."""
        result = result.lower()
        if result in CACHE_RESULTS:
            self._cache.add((result,))

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """What a scrape gets, and its content type: the format its Accept header asks for (Prometheus'
        text format by default, OpenMetrics when asked), as prometheus_client negotiates it."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type


_TOKEN_KINDS = (("input", "input_tokens"), ("output", "output_tokens"), ("cached", "cached_tokens"))


def bounded_model(name: str, known: Iterable[str]) -> str:
    """A model label: the configured public name, `none` for calls without one, else `unknown`."""
    if not name:
        return NO_MODEL
    return name if name in known else UNKNOWN_MODEL


class _Tally:
    """A counter family kept as plain numbers by label values, handed to prometheus_client at scrape time. An
    increment is one dictionary update, where a client-library counter takes a lock and checks its labels
    each time (about 2 µs); it needs no lock because only the event loop's thread counts, and a scrape from
    another thread reads a copy (one C-level step under the GIL)."""

    __slots__ = ("counts", "documentation", "labels", "name")

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self.counts: dict[tuple[str, ...], float] = {}

    def add(self, values: tuple[str, ...], amount: float = 1) -> None:
        self.counts[values] = self.counts.get(values, 0) + amount

    def family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, count in self.counts.copy().items():
            family.add_metric(values, count)
        return family


class _Tallies(Collector):
    def __init__(self, tallies: tuple[_Tally, ...]) -> None:
        self._tallies = tallies

    def collect(self) -> Iterator[Any]:
        for tally in self._tallies:
            yield tally.family()


class _Children:
    """A labelled histogram's children cached by label values: `labels()` costs a lock and a check each call."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: Histogram) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Histogram] = {}

    def __call__(self, *values: str) -> Histogram:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class _Cooldowns(Collector):
    """Cooldowns started per provider, and whether each provider is cooling down now, read at scrape time from
    the current router (a reload starts a new router, so the counter restarts there, as after a restart)."""

    def __init__(self, health: Callable[[], tuple[ProviderHealth, Iterable[str]]]) -> None:
        self._health = health

    def collect(self) -> Iterator[Any]:
        health, providers = self._health()
        started = CounterMetricFamily(
            "gateway_cooldowns", "Provider cooldowns started (since start or the last reload).", labels=("provider",)
        )
        cooling = GaugeMetricFamily("gateway_provider_cooling", "1 while a provider is skipped.", labels=("provider",))
        now = time.monotonic()
        for provider in providers:
            started.add_metric((provider,), health.cooldowns.get(provider, 0))
            cooling.add_metric((provider,), 1.0 if health.cooling(provider, now) else 0.0)
        yield started
        yield cooling
