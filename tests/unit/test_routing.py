"""Attempt planning, backoff and cooldown of the router."""

from __future__ import annotations

import time

from server.routing import ProviderHealth, _plan, backoff_seconds
from server.settings import RoutingSettings
from server.types import Target

A, B = Target("a", "m1"), Target("b", "m2")


def test_plan_tries_each_target_then_goes_round_for_retries() -> None:
    health = ProviderHealth(RoutingSettings())
    assert [t for _, t in _plan((A, B), health, retries=1)] == [A, B, A]
    assert [i for i, _ in _plan((A,), health, retries=2)] == [0, 0, 0]


def test_cooling_provider_is_skipped_while_another_remains() -> None:
    health = ProviderHealth(RoutingSettings(cooldown_failures=2, cooldown_seconds=60))
    now = time.monotonic()
    health.failed("a", now)
    assert [t for _, t in _plan((A, B), health, 0)] == [A, B]
    health.failed("a", now)
    assert [t for _, t in _plan((A, B), health, 0)] == [B]
    assert [t for _, t in _plan((A,), health, 0)] == [A]  # never nothing to try
    health.succeeded("a")
    assert [t for _, t in _plan((A, B), health, 0)] == [A, B]


def test_backoff_is_jittered_exponential_and_honours_retry_after_with_a_cap() -> None:
    settings = RoutingSettings(backoff_base_ms=100, backoff_max_ms=1000, max_retry_after_seconds=5)
    for round_number, ceiling in ((0, 0.1), (1, 0.2), (3, 0.8), (6, 1.0)):
        delay = backoff_seconds(settings, round_number, None)
        assert ceiling / 2 <= delay <= ceiling
    assert backoff_seconds(settings, 0, 2.0) == 2.0
    assert backoff_seconds(settings, 0, 120.0) == 5.0
