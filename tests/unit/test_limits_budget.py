"""The sliding-window limiter and the reservation budgets, with explicit clocks."""

from __future__ import annotations

import pytest

from server.budget import Budgets, month_key, month_start_ms
from server.errors import GatewayError
from server.limits import Check, RateLimiter, Window, format_reset


def test_window_admits_exactly_limit_then_reopens_as_entries_age() -> None:
    window = Window(3, 60)
    for t in (0.0, 10.0, 20.0):
        assert window.wait_for(t, 1) == 0
        window.add(t, 1)
    assert window.wait_for(30.0, 1) == pytest.approx(30.0)  # the t=0 entry leaves at 60
    assert window.wait_for(60.0, 1) == 0
    assert window.remaining() == 1


def test_token_entries_are_corrected_to_actual_usage() -> None:
    window = Window(100, 60)
    entry = window.add(0.0, 90)
    assert window.wait_for(1.0, 20) > 0
    window.correct(entry, 10)
    assert window.wait_for(1.0, 20) == 0


def test_a_request_larger_than_the_limit_never_fits() -> None:
    limiter = RateLimiter()
    window = limiter.window(("k",), 10, 60)
    with pytest.raises(GatewayError) as info:
        limiter.admit([Check(window, 11, "key", "tokens")], 0.0)
    assert info.value.status == 429 and "needs 11 tokens" in info.value.message


def test_all_or_nothing_across_limits() -> None:
    limiter = RateLimiter()
    loose, tight = limiter.window(("a",), 10, 60), limiter.window(("b",), 1, 60)
    limiter.admit([Check(loose, 1, "a", "requests"), Check(tight, 1, "b", "requests")], 0.0)
    with pytest.raises(GatewayError):
        limiter.admit([Check(loose, 1, "a", "requests"), Check(tight, 1, "b", "requests")], 1.0)
    assert loose.remaining() == 9  # the refused request consumed nothing


def test_reset_format_matches_openai() -> None:
    assert format_reset(0.02) == "20ms"
    assert format_reset(1.5) == "1.5s"
    assert format_reset(360) == "6m0s"


def _budgets() -> Budgets:
    return Budgets(zone="UTC", month="2026-11")


NOW = 1_795_000_000_000  # 2026-11-18


def test_reservations_cannot_exceed_a_budget_and_settle_releases_the_rest() -> None:
    budgets = _budgets()
    holds = [
        budgets.reserve("p", "k", 300, project_budget=1000, key_budget=None, prepaid=False, now_ms=NOW)
        for _ in range(3)
    ]
    with pytest.raises(GatewayError) as info:
        budgets.reserve("p", "k", 300, project_budget=1000, key_budget=None, prepaid=False, now_ms=NOW)
    assert info.value.code == "budget_exceeded"
    budgets.settle(holds[0], 100, project_budget=1000, key_budget=None, now_ms=NOW)
    budgets.reserve("p", "k", 300, project_budget=1000, key_budget=None, prepaid=False, now_ms=NOW)
    assert budgets.spent_project["p"] == 100
    budgets.settle(holds[0], 100, project_budget=1000, key_budget=None, now_ms=NOW)  # twice: no effect
    assert budgets.spent_project["p"] == 100


def test_prepaid_wallet_reservations_never_go_below_zero() -> None:
    budgets = _budgets()
    budgets.credit("p", 500)
    hold = budgets.reserve("p", "k", 400, project_budget=None, key_budget=None, prepaid=True, now_ms=NOW)
    with pytest.raises(GatewayError) as info:
        budgets.reserve("p", "k", 200, project_budget=None, key_budget=None, prepaid=True, now_ms=NOW)
    assert info.value.code == "insufficient_credits"
    budgets.release(hold)
    assert budgets.reserved_wallet == {} and budgets.open_holds == 0


def test_thresholds_fire_once_each_and_month_rolls() -> None:
    budgets = _budgets()
    crossed = []
    for _ in range(12):
        hold = budgets.reserve("p", "k", 10, project_budget=100, key_budget=None, prepaid=False, now_ms=NOW)
        crossed += budgets.settle(hold, 10, project_budget=100, key_budget=None, now_ms=NOW)
        if budgets.spent_project["p"] >= 100:
            break
    assert [c.percent for c in crossed if c.scope == "project"] == [50, 80, 100]
    december = 1_796_300_000_000  # 2026-12-03
    budgets.roll(december)
    assert budgets.month == "2026-12" and budgets.spent_project == {}


def test_month_boundaries_follow_the_configured_zone() -> None:
    just_after_utc_midnight = 1_796_083_200_000 + 60_000  # 2026-12-01 00:01 UTC
    assert month_key(just_after_utc_midnight, "UTC") == "2026-12"
    assert month_key(just_after_utc_midnight, "America/New_York") == "2026-11"
    assert month_start_ms(just_after_utc_midnight, "UTC") == 1_796_083_200_000


def test_idle_windows_are_pruned_so_memory_follows_active_clients() -> None:
    limiter = RateLimiter()
    for n in range(100):
        limiter.admit([Check(limiter.window(("ip", f"10.0.0.{n}"), 5, 60), 1, "ip", "requests")], 0.0)
    assert limiter.prune(30.0) == 0  # still inside their window
    assert limiter.prune(61.0) == 100


def test_the_ip_net_paces_with_constant_memory_and_forgets_idle_clients() -> None:
    limiter = RateLimiter()
    pace = limiter.pace(("ip", "10.0.0.1"), 5, 60)
    for _ in range(5):  # a burst of the limit passes
        limiter.admit([Check(pace, 1, "ip", "requests")], 0.0)
    with pytest.raises(GatewayError) as info:
        limiter.admit([Check(pace, 1, "ip", "requests")], 0.0)
    assert info.value.status == 429 and int(info.value.headers["retry-after"]) == 12  # one slot per 60/5 s
    limiter.admit([Check(pace, 1, "ip", "requests")], 12.0)
    for n in range(20_000):  # many clients, one request each: one float of state apiece, dropped when idle
        limiter.admit(
            [Check(limiter.pace(("ip", f"10.1.{n // 256}.{n % 256}"), 5000, 600), 1, "ip", "requests")], 100.0
        )
    assert len(limiter) >= 19_990 and not hasattr(limiter.pace(("ip", "10.0.0.1"), 5, 60), "entries")
    limiter.prune(1000.0)
    assert len(limiter) == 0
