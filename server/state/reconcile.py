"""Redis's budget totals reconciled with the store, every few seconds, by one process of the fleet.

Why: Redis keeps running totals (spent this month per project and key, wallet balances) that each settlement
moves; anything that moves the store without them drifts them: a survivor closing a dead process's streams,
a settlement or credit lost with a process during an outage, an operator's edit. The store is the truth.

How, without losing what is in flight: holds live apart from the totals (sorted sets and their own sums), so
setting a total never touches a hold. A settlement reaches Redis before its store commit, so each one leaves
an entry (hold id -> project|key|month|actual) in `UNSETTLED` (server/state/budgets.py). A round:

1. lists the entries' ids (HKEYS);
2. asks the store which of those requests are closed, then reads its totals (closed first: see
   server/store/sqlite/totals.py);
3. in one Lua script: drops the closed entries, and sets each total to the store's value plus (spend) or
   minus (balance) the entries still open; the balances are left alone while a credit is between its store
   commit and Redis (the `CREDITING` fence), and nothing is written when Redis lost its totals (the reload
   in budgets.py loads them).

So a total is never set below what has been settled (an entry closed between steps 1 and 2 is counted twice
for one round: refusing a little early, never admitting over budget) and drift is gone within one period.
A request that never closes keeps its entry counted until the crash recovery closes it.

Who runs it: the holder of the store's `reconcile` lease (PostgreSQL: one process of the fleet at a time; the
SQLite single process always). Failure behaviour: a round that cannot reach Redis or the store is skipped and
logged; the next one tries again; the request path never waits on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from server.budget import month_start_ms
from server.clock import now_ms
from server.state.budgets import CREDITING, MONTH_TTL_MS, UNSETTLED, SharedBudgets
from server.state.connection import PREFIX, Script, Unavailable
from server.store.protocol import Committed

log = logging.getLogger("gateway")

# KEYS: the month's loaded marker, UNSETTLED, CREDITING, then one total per triple of ARGV after the closed ids.
# ARGV: the month, the number of closed ids, the ids, then (kind p/k/b, id, store value) per total.
# Returns how many totals it changed (-1: Redis lost its totals, nothing written).
RECONCILE = Script(
    """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local month, closed = ARGV[1], tonumber(ARGV[2])
for i = 3, 2 + closed, 500 do
  redis.call('HDEL', KEYS[2], unpack(ARGV, i, math.min(i + 499, 2 + closed)))
end
local open = {p = {}, k = {}, b = {}}
local entries = redis.call('HGETALL', KEYS[2])
for i = 2, #entries, 2 do
  local project, key, at, actual = string.match(entries[i], '^([^|]*)|([^|]*)|([^|]*)|(-?%d+)$')
  actual = tonumber(actual)
  open.b[project] = (open.b[project] or 0) - actual
  if at == month then
    open.p[project] = (open.p[project] or 0) + actual
    open.k[key] = (open.k[key] or 0) + actual
  end
end
local fenced = tonumber(redis.call('GET', KEYS[3]) or '0') > 0
local changed = 0
for i = 4, #KEYS do
  local j = 3 + closed + (i - 4) * 3
  local kind, id = ARGV[j], ARGV[j + 1]
  if kind ~= 'b' or not fenced then
    local target = tonumber(ARGV[j + 2]) + (open[kind][id] or 0)
    if tonumber(redis.call('GET', KEYS[i]) or '0') ~= target then
      if kind == 'b' then
        redis.call('SET', KEYS[i], target)
      else
        redis.call('SET', KEYS[i], target, 'PX', MONTH_TTL)
      end
      changed = changed + 1
    end
  end
end
return changed
""".replace("MONTH_TTL", str(MONTH_TTL_MS))
)

ReadCommitted = Callable[[int, Sequence[str]], Awaitable[Committed]]  # (since ms, request ids) -> the store's


async def reconcile(budgets: SharedBudgets, read: ReadCommitted) -> int:
    """One round (steps above); how many totals it corrected (-1: Redis has no totals loaded)."""
    connection = budgets.connection
    ids = [i.decode() for i in connection.call(connection.client.hkeys, UNSETTLED)]  # on the loop, like requests
    month = budgets.month
    store = await read(month_start_ms(now_ms(), budgets.zone), ids)
    keys = [f"{PREFIX}b:loaded:{month}", UNSETTLED, CREDITING]
    args: list[object] = [month, len(store.closed), *store.closed]
    for kind, table in (("p", store.spent_project), ("k", store.spent_key)):
        for ident, micro in table.items():
            keys.append(f"{PREFIX}b:spent:{month}:{kind}:{ident}")
            args += (kind, ident, micro)
    for ident, micro in store.balances.items():
        keys.append(f"{PREFIX}b:bal:{ident}")
        args += ("b", ident, micro)
    return int(connection.run(RECONCILE, keys, args))


async def keep_reconciling(
    budgets: SharedBudgets, read: ReadCommitted, lease: Callable[[], Awaitable[bool]], period_s: float
) -> None:
    """Every `period_s`, a round while this process holds the lease; errors are logged, never raised."""
    while True:
        await asyncio.sleep(period_s)
        try:
            if not await lease():
                continue
            changed = await reconcile(budgets, read)
        except Unavailable:
            continue  # Redis is down: requests are refused meanwhile, the next round catches up
        except Exception as exc:
            log.warning("budget totals not reconciled this round: %r", exc)
            continue
        if changed > 0:
            log.warning("reconciled %d budget totals in redis with the store", changed)
