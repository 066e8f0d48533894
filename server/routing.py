"""Try a model's targets in order, with bounded retries, jittered backoff and provider cooldowns.

- The next target is tried at once on a retryable failure (connect error, timeout, 429, 5xx);
  any other 4xx ends the call with that error.
- After every target failed once, up to `retries` more attempts go round the list again, each after
  a jittered exponential backoff, or the provider's Retry-After when it is given (capped).
- A provider that failed `cooldown_failures` times in a row is skipped for `cooldown_seconds`
  while another target remains; one success resets it.
- Every attempt is appended to `attempts` (target, status, latency) for the request row.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from server.errors import UpstreamError
from server.providers.base import Provider
from server.settings import RoutingSettings
from server.types import Attempt, Target

T = TypeVar("T")

# Attempt statuses of failures that never reached the provider (no cooldown, no upstream latency).
NOT_UPSTREAM = ("translation", "project_share")


class ProviderHealth:
    def __init__(self, settings: RoutingSettings) -> None:
        self._settings = settings
        self._failures: dict[str, int] = {}
        self._cool_until: dict[str, float] = {}
        self.cooldowns: dict[str, int] = {}  # cooldowns started per provider (read by /metrics)

    def cooling(self, provider: str, now: float) -> bool:
        return self._cool_until.get(provider, 0.0) > now

    def failed(self, provider: str, now: float) -> None:
        count = self._failures.get(provider, 0) + 1
        self._failures[provider] = count
        if count >= self._settings.cooldown_failures:
            self._cool_until[provider] = now + self._settings.cooldown_seconds
            self._failures[provider] = 0
            self.cooldowns[provider] = self.cooldowns.get(provider, 0) + 1

    def succeeded(self, provider: str) -> None:
        self._failures.pop(provider, None)
        self._cool_until.pop(provider, None)


def _plan(targets: tuple[Target, ...], health: ProviderHealth, retries: int) -> list[tuple[int, Target]]:
    """The attempt order: healthy targets first round, then `retries` more going round again."""
    now = time.monotonic()
    ready = [(i, t) for i, t in enumerate(targets) if not health.cooling(t.provider, now)] or list(enumerate(targets))
    return [ready[n % len(ready)] for n in range(len(ready) + retries)]


def backoff_seconds(settings: RoutingSettings, round_number: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, settings.max_retry_after_seconds)
    ceiling = min(settings.backoff_max_ms, settings.backoff_base_ms * 2**round_number) / 1000
    return random.uniform(ceiling / 2, ceiling)  # jitter spreads retries from many clients


class Lease:
    """One upstream call counted against its project's share of a provider's connections; released once."""

    __slots__ = ("_counts", "_key")

    def __init__(self, counts: dict[tuple[str, str], int] | None, key: tuple[str, str]) -> None:
        self._counts, self._key = counts, key

    def release(self) -> None:
        if self._counts is None:
            return
        left = self._counts[self._key] - 1
        if left:
            self._counts[self._key] = left
        else:
            del self._counts[self._key]
        self._counts = None


class ConnectionShares:
    """At most `limits[provider]` concurrent calls per (provider, project): one tenant (with stalled streams,
    say) cannot hold a provider's whole connection pool while other tenants wait for it."""

    def __init__(self, limits: dict[str, int]) -> None:
        self._limits = limits
        self._counts: dict[tuple[str, str], int] = {}

    def limit(self, limits: dict[str, int]) -> None:
        """New shares after a reload; calls already counted stay counted (their leases release as before)."""
        self._limits = limits

    def take(self, provider: str, project_id: str) -> Lease:
        key = (provider, project_id)
        used = self._counts.get(key, 0)
        limit = self._limits.get(provider)
        if limit is not None and used >= limit:
            raise UpstreamError(
                429,
                f"This project already has {used} calls open to provider {provider}, its share of the connections.",
                retryable=True,
                upstream_status="project_share",
                retry_after=1.0,
                code="too_many_open_calls",
            )
        self._counts[key] = used + 1
        return Lease(self._counts, key)

    def in_use(self, provider: str, project_id: str) -> int:
        return self._counts.get((provider, project_id), 0)


class Router:
    """A model's targets in order, with retries, backoff, cooldowns and per-project connection shares."""

    def __init__(
        self,
        providers: dict[str, Provider],
        settings: RoutingSettings,
        shares: ConnectionShares,
        health: ProviderHealth | None = None,
    ) -> None:
        self.providers = providers
        self.settings = settings
        self.health = health if health is not None else ProviderHealth(settings)
        self.shares = shares

    async def first_success(
        self,
        targets: tuple[Target, ...],
        call: Callable[[Provider, str], Awaitable[T]],
        attempts: list[Attempt],
        project_id: str,
    ) -> tuple[int, Target, T, Lease]:
        """(index of the serving target, the target, its result, the connection lease the caller releases)."""
        settings = self.settings
        plan = _plan(targets, self.health, settings.retries)
        first_round = len(plan) - settings.retries
        last: UpstreamError | None = None
        for n, (index, target) in enumerate(plan):
            if n >= first_round and last is not None:
                await asyncio.sleep(backoff_seconds(settings, n - first_round, last.retry_after))
            provider = self.providers[target.provider]
            started = time.perf_counter()
            try:
                lease = self.shares.take(target.provider, project_id)
                try:
                    result = await call(provider, target.model)
                except BaseException:
                    lease.release()
                    raise
            except UpstreamError as exc:
                attempts.append(Attempt(str(target), exc.upstream_status, (time.perf_counter() - started) * 1000))
                if exc.upstream_status not in NOT_UPSTREAM:
                    self.health.failed(target.provider, time.monotonic())
                if not exc.retryable:
                    raise
                last = exc
                continue
            attempts.append(Attempt(str(target), 200, (time.perf_counter() - started) * 1000))
            self.health.succeeded(target.provider)
            return index, target, result, lease
        assert last is not None
        raise UpstreamError(
            last.status,
            f"All upstream targets failed ({len(attempts)} attempts); last: {last.message}",
            retryable=False,
            upstream_status=last.upstream_status,
            retry_after=last.retry_after,
            code=last.code or "upstream_error",
        )
