"""The reconciliation of Redis's budget totals with the store (server/state/reconcile.py), against a real
redis-server: drift is corrected, open holds and spend settled in Redis but not yet closed in the store are
kept, a credit between its commit and Redis is not counted twice, and a Redis without totals is left alone.
The store's side of each round is given as the store would answer it (the e2e tests run it on a real one)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest
import redis

from server.state.budgets import UNSETTLED, SharedBudgets, Totals
from server.state.connection import Connection
from server.state.reconcile import reconcile
from server.store.protocol import Committed
from tests.support.services import Redis

MICRO = 1_000
P, K = "prj_r", "key_r"


async def _no_load() -> Totals:
    return {}, {}, {}


@pytest.fixture()
def budgets(redis_server: Redis) -> SharedBudgets:
    redis_server.flush()
    shared = SharedBudgets(Connection(redis_server.url, 2000), "UTC", 30.0, _no_load)
    asyncio.run(shared.start(({P: 0}, {K: 0}, {P: 100 * MICRO}), []))
    return shared


def _store(spent: int, balance: int, closed: Sequence[str] = ()) -> Committed:
    return Committed(set(closed), {P: spent}, {K: spent}, {P: balance})


def _round(budgets: SharedBudgets, store: Committed) -> int:
    async def read(since_ms: int, ids: Sequence[str]) -> Committed:
        return Committed(store.closed & set(ids), store.spent_project, store.spent_key, store.balances)

    return asyncio.run(reconcile(budgets, read))


def _hold(budgets: SharedBudgets, micro: int, hold_id: str) -> object:
    now = int(time.time() * 1000)
    return budgets.reserve(P, K, micro, project_budget=None, key_budget=None, prepaid=True, now_ms=now, hold_id=hold_id)


def _settle(budgets: SharedBudgets, hold: object, actual: int) -> None:
    now = int(time.time() * 1000)
    budgets.settle(hold, actual, project_budget=None, key_budget=None, now_ms=now)  # type: ignore[arg-type]


def _totals(budgets: SharedBudgets) -> tuple[int, int, int, int]:
    return (
        budgets.spent_project.get(P),
        budgets.spent_key.get(K),
        budgets.balances.get(P),
        budgets.reserved_wallet.get(P),
    )


def _drift(budgets: SharedBudgets) -> None:
    """What the reconciliation is for: totals that no longer say what the store says."""
    client: redis.Redis = budgets.connection.client
    client.set(f"gw:b:spent:{budgets.month}:p:{P}", 55 * MICRO)
    client.set(f"gw:b:bal:{P}", 999 * MICRO)


def test_drift_is_corrected_keeping_open_holds_and_spend_not_yet_in_the_store(budgets: SharedBudgets) -> None:
    _hold(budgets, 10 * MICRO, "req_open")  # in flight: held, not spent
    _settle(budgets, _hold(budgets, 9 * MICRO, "req_done"), 7 * MICRO)  # settled here; its closing not committed
    _drift(budgets)
    assert _round(budgets, _store(0, 100 * MICRO)) == 2  # the project's spend and its balance
    assert _totals(budgets) == (7 * MICRO, 7 * MICRO, 93 * MICRO, 10 * MICRO)
    assert _round(budgets, _store(7 * MICRO, 93 * MICRO, closed=["req_done"])) == 0  # committed: nothing to fix
    assert budgets.connection.client.hlen(UNSETTLED) == 0  # its entry is dropped
    assert _totals(budgets) == (7 * MICRO, 7 * MICRO, 93 * MICRO, 10 * MICRO)


def test_a_credit_inside_its_fence_is_not_counted_twice(budgets: SharedBudgets) -> None:
    with budgets.crediting() as credit:  # committed in the store, then a round reads it, then Redis gets it
        assert _round(budgets, _store(0, 150 * MICRO)) == 0  # the fence: the balance is left alone
        credit(P, 50 * MICRO)
    assert budgets.balances.get(P) == 150 * MICRO
    assert _round(budgets, _store(0, 150 * MICRO)) == 0
    _drift(budgets)
    _round(budgets, _store(0, 150 * MICRO))
    assert budgets.balances.get(P) == 150 * MICRO  # the fence is down: balances are reconciled again


def test_an_undone_spend_is_undone_once(budgets: SharedBudgets) -> None:
    hold = _hold(budgets, 9 * MICRO, "req_refused")
    _settle(budgets, hold, 7 * MICRO)
    budgets.unspend(hold, 7 * MICRO)  # the store refused the closing: the spend never happened
    budgets.unspend(hold, 7 * MICRO)  # again (a retry): nothing more
    assert _totals(budgets)[:3] == (0, 0, 100 * MICRO)
    assert _round(budgets, _store(0, 100 * MICRO)) == 0


def test_a_redis_that_lost_its_totals_is_left_to_the_reload(budgets: SharedBudgets) -> None:
    budgets.connection.client.flushall()
    assert _round(budgets, _store(5 * MICRO, 100 * MICRO)) == -1
    assert budgets.connection.client.keys("gw:b:*") == []
