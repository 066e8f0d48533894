"""Budgets and wallets on Redis: the reservations of server/budget.py, shared by every process of a fleet.

Check-and-reserve is one Lua script: it drops expired holds, measures spent + held against the key's and
the project's monthly budgets and (prepaid) the wallet balance minus its holds, and adds the hold to every
scope, or refuses, atomically. 100 concurrent reservations from any number of processes where K fit:
exactly K are granted.

Holds: each is a member `<id>|<micro>` of a sorted set per scope (key, project, wallet) scored by its
expiry (Redis time + `hold_ttl_s`), with a running total per scope. The process that made a hold renews
it every `hold_ttl_s / 3` while it lives (and puts it back if Redis lost it); a dead process's holds
expire and the next check-and-reserve on that scope drops them. A hold resolves once: `settle` and
`release` remove the member (ZREM says whether it was still there), so a late or repeated resolution
never gives money back twice.

Totals: spent this month (per project and key) and wallet balances are loaded from the store (the truth)
by the first process to start after Redis came up empty (a marker per month says they are loaded); a
process restarting on a loaded Redis adds what its own crash recovery billed. Each settlement then adds
its committed charge (and `unspend` takes back one the store refused). A Redis that lost its data (a
restart without persistence) is noticed by the missing marker: requests get 503 until the totals are
loaded again from the store, moments later. A new month on a Redis that holds last month's marker only
starts its spend at zero (no reload, no 503).

Failure behaviour: a reservation that cannot reach Redis is refused with 503 `metering_unavailable`
(never admitted unmetered); a settlement, release or credit that cannot reach it is kept in this process
and applied when Redis answers again (the store has the money event either way).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from server.budget import Crossing, Hold, _budget_error, month_key, next_month_start, thresholds_crossed
from server.clock import now_ms
from server.errors import INSUFFICIENT_CREDITS
from server.money import format_credits
from server.state.connection import CLOCK_LUA, PREFIX, Connection, Script, Unavailable, refused

if TYPE_CHECKING:
    from server.limits import Admission, Check
    from server.state.limits import SharedRateLimiter

log = logging.getLogger("gateway")
MONTH_TTL_MS = 40 * 86_400_000  # a month's spend outlives the month, then expires

PURGE = """
local function purge(z, t, now)
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', now, 'LIMIT', 0, 1000)
  if #gone > 0 then
    local sum = 0
    for _, member in ipairs(gone) do sum = sum + tonumber(string.match(member, '|(%d+)$')) end
    redis.call('ZREM', z, unpack(gone))
    redis.call('DECRBY', t, sum)
  end
  return tonumber(redis.call('GET', t) or '0')
end
"""

# Check-and-reserve as Lua functions other scripts compose (server/state/admission.py runs them with the rate
# limits). KEYS[k0 + 1 ..]: marker, holds/held of key, project, wallet, spent key, spent project, balance,
# last month's marker (11). ARGV[a0 + 1 ..]: member, micro, key budget (-1: none), project budget (-1),
# prepaid (0/1), ttl ms, check (0/1), the marker's ttl (8). `budget_check` answers a code (0 fits, 1 key
# budget, 2 project budget, 3 wallet, 9 totals not loaded) and the amount used or available.
BUDGET_LUA = (
    PURGE
    + """
local function budget_check(k0, a0, now)
  local micro, check = tonumber(ARGV[a0 + 2]), ARGV[a0 + 7] == '1'
  if check and redis.call('EXISTS', KEYS[k0 + 1]) == 0 then
    if redis.call('EXISTS', KEYS[k0 + 11]) == 0 then return 9, 0 end
    redis.call('SET', KEYS[k0 + 1], '1', 'PX', ARGV[a0 + 8])  -- a new month on a loaded Redis: spend from 0
  end
  local held_k = purge(KEYS[k0 + 2], KEYS[k0 + 3], now)
  local held_p = purge(KEYS[k0 + 4], KEYS[k0 + 5], now)
  local held_w = purge(KEYS[k0 + 6], KEYS[k0 + 7], now)
  if not check then return 0, 0 end
  local key_budget, project_budget = tonumber(ARGV[a0 + 3]), tonumber(ARGV[a0 + 4])
  if key_budget >= 0 then
    local used = tonumber(redis.call('GET', KEYS[k0 + 8]) or '0') + held_k
    if used + micro > key_budget then return 1, used end
  end
  if project_budget >= 0 then
    local used = tonumber(redis.call('GET', KEYS[k0 + 9]) or '0') + held_p
    if used + micro > project_budget then return 2, used end
  end
  if ARGV[a0 + 5] == '1' then
    local available = tonumber(redis.call('GET', KEYS[k0 + 10]) or '0') - held_w
    if micro > available then return 3, available end
  end
  return 0, 0
end

local function budget_commit(k0, a0, now)
  local member, micro = ARGV[a0 + 1], tonumber(ARGV[a0 + 2])
  local expires = now + tonumber(ARGV[a0 + 6])
  local last = ARGV[a0 + 5] == '1' and 3 or 2
  for i = 1, last do
    if redis.call('ZADD', KEYS[k0 + 2 * i], 'NX', expires, member) == 1 then
      redis.call('INCRBY', KEYS[k0 + 2 * i + 1], micro)
    end
  end
end
"""
)
BUDGET_KEYS, BUDGET_ARGS = 11, 8

# KEYS and ARGV as BUDGET_LUA with k0 = a0 = 0; reply: {code, used}
RESERVE = Script(
    CLOCK_LUA
    + BUDGET_LUA
    + """
local code, used = budget_check(0, 0, now)
if code == 0 then budget_commit(0, 0, now) end
return {code, used}
"""
)

# KEYS: holds/held of key, project, wallet, spent key, spent project, balance, the unsettled entries
# ARGV: member, micro, actual, wallet (0/1), spend (0/1: settle or release), the hold's id and its entry
# ('': none). A spend's entry (project|key|month|actual) stays until the reconciler finds its request closed in
# the store (server/state/reconcile.py): until then it is counted beside the store's totals.
RESOLVE = Script(
    """
local member, micro, actual = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local last = ARGV[4] == '1' and 3 or 2
local removed = 0
for i = 1, last do
  if redis.call('ZREM', KEYS[2 * i - 1], member) == 1 then
    redis.call('DECRBY', KEYS[2 * i], micro)
    removed = 1
  end
end
if ARGV[5] ~= '1' then return {removed, 0, 0} end
local before_k = tonumber(redis.call('GET', KEYS[7]) or '0')
local before_p = tonumber(redis.call('GET', KEYS[8]) or '0')
redis.call('SET', KEYS[7], before_k + actual, 'PX', MONTH_TTL)
redis.call('SET', KEYS[8], before_p + actual, 'PX', MONTH_TTL)
redis.call('DECRBY', KEYS[9], actual)
if ARGV[7] ~= '' then redis.call('HSET', KEYS[10], ARGV[6], ARGV[7]) end
return {removed, before_k, before_p}
""".replace("MONTH_TTL", str(MONTH_TTL_MS))
)

# KEYS: the unsettled entries, spent key, spent project, balance; ARGV: the hold's id, actual. Undone only
# while its entry is there: once the reconciler dropped it (its request closed, unbilled), the store's
# totals already leave it out.
UNSPEND = Script(
    """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('DECRBY', KEYS[2], ARGV[2])
redis.call('DECRBY', KEYS[3], ARGV[2])
redis.call('INCRBY', KEYS[4], ARGV[2])
return 1
"""
)
UNSETTLED = f"{PREFIX}b:unsettled"  # hold id -> project|key|month|actual: settled here, not yet closed in the store
CREDITING = f"{PREFIX}b:crediting"  # credits between their store commit and Redis: the reconciler leaves balances
FENCE_MS = 30_000  # a fence its process never took down (it died) lapses after this long

# KEYS: a holds set and its total per hold and scope; ARGV: ttl ms, then a member and its micro per pair.
# A hold missing from its set (it expired during an outage longer than its ttl, or Redis restarted
# empty) is put back: the request is still running, so its money is still held.
RENEW = Script(
    """
local t = redis.call('TIME')
local expires = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local restored = 0
for i = 1, #KEYS / 2 do
  if redis.call('ZADD', KEYS[2 * i - 1], expires, ARGV[2 * i]) == 1 then
    redis.call('INCRBY', KEYS[2 * i], tonumber(ARGV[2 * i + 1]))
    restored = restored + 1
  end
end
return restored
"""
)

# KEYS: marker, then the totals; ARGV: force (0/1), then a value and a ttl (0: none) per total
LOAD = Script(
    """
if ARGV[1] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 2, #KEYS do
  local ttl = tonumber(ARGV[2 * i - 1])
  if ttl > 0 then
    redis.call('SET', KEYS[i], ARGV[2 * i - 2], 'PX', ttl)
  else
    redis.call('SET', KEYS[i], ARGV[2 * i - 2])
  end
end
redis.call('SET', KEYS[1], '1', 'PX', MONTH_TTL)
return 1
""".replace("MONTH_TTL", str(MONTH_TTL_MS))
)

# KEYS: holds set, held total
HELD = Script(CLOCK_LUA + PURGE + "return purge(KEYS[1], KEYS[2], now)")

Totals = tuple[dict[str, int], dict[str, int], dict[str, int]]  # spent by project, by key, balances


def _hold_keys(hold: Hold) -> list[str]:
    return [
        f"{PREFIX}b:holds:k:{hold.key_id}",
        f"{PREFIX}b:held:k:{hold.key_id}",
        f"{PREFIX}b:holds:p:{hold.project_id}",
        f"{PREFIX}b:held:p:{hold.project_id}",
        f"{PREFIX}b:holds:w:{hold.project_id}",
        f"{PREFIX}b:held:w:{hold.project_id}",
    ]


@dataclass(slots=True, frozen=True)
class Asked:
    """A reservation about to be asked of Redis: its hold, and BUDGET_LUA's KEYS and ARGV."""

    hold: Hold
    month: str
    project_budget: int | None
    key_budget: int | None
    keys: list[str]
    args: tuple[object, ...]


@dataclass(slots=True, frozen=True)
class _View:
    """A read-only per-id view of one shared total (what the admin routes read as a dict)."""

    budgets: SharedBudgets
    scope: str

    def get(self, ident: str, default: int = 0) -> int:
        try:
            return self.budgets.read(self.scope, ident)
        except Unavailable:
            raise refused() from None


class SharedBudgets:
    """The `Budgets` of a fleet (same methods), with its state in Redis."""

    def __init__(
        self, connection: Connection, zone: str, hold_ttl_s: float, load: Callable[[], Awaitable[Totals]]
    ) -> None:
        self._connection = connection
        self.zone = zone
        self._ttl_ms = int(hold_ttl_s * 1000)
        self._load = load
        self._open: dict[str, Hold] = {}  # holds this process made and renews
        self._pending: list[tuple[Hold, int, bool]] = []  # resolutions Redis missed: (hold, actual, spend)
        self._unspent: list[tuple[Hold, int]] = []  # undone settlements Redis missed
        self._reloading: asyncio.Task[None] | None = None
        self.spent_project = _View(self, "spent:p")
        self.spent_key = _View(self, "spent:k")
        self.reserved_project = _View(self, "held:p")
        self.reserved_key = _View(self, "held:k")
        self.reserved_wallet = _View(self, "held:w")
        self.balances = _View(self, "bal")

    @property
    def month(self) -> str:
        return month_key(now_ms(), self.zone)

    @property
    def connection(self) -> Connection:
        return self._connection

    @property
    def open_holds(self) -> int:
        """Holds this process made that are still open."""
        return len(self._open)

    def roll(self, now_ms: int) -> None:
        """Months are part of the keys: nothing to roll."""

    def _marker(self, month: str) -> str:
        return f"{PREFIX}b:loaded:{month}"

    def _spent(self, scope: str, month: str, ident: str) -> str:
        return f"{PREFIX}b:spent:{month}:{scope}:{ident}"

    def read(self, scope: str, ident: str) -> int:
        """One total: spent this month, held (expired holds dropped first) or a balance."""
        if scope.startswith("held:"):
            kind = scope[-1]
            keys = (f"{PREFIX}b:holds:{kind}:{ident}", f"{PREFIX}b:held:{kind}:{ident}")
            return int(self._connection.run(HELD, keys, ()))
        if scope == "bal":
            value = self._connection.call(self._connection.client.get, f"{PREFIX}b:bal:{ident}")
        else:
            value = self._connection.call(self._connection.client.get, self._spent(scope[-1], self.month, ident))
        return int(value or 0)

    # -- loading the totals from the store

    async def start(self, totals: Totals, recovered: list[tuple[str, str, int]]) -> None:
        """At start-up: load the store's totals if Redis has none for this month, else add what this
        process's own crash recovery billed ((project, key, micro) each)."""
        try:
            loaded = await asyncio.to_thread(self._connection.call, self._write_totals, totals, False)
        except Unavailable as exc:  # refuse to start rather than forget what this start-up recovered
            raise RuntimeError(f"[state] url: redis at {self._connection.url} is unreachable at start: {exc}") from None
        if not loaded:
            for project_id, key_id, micro in recovered:
                self._apply(Hold(project_id, key_id, 0, False, "recovered"), micro, True, entry=False)

    def _write_totals(self, totals: Totals, force: bool) -> bool:
        spent_project, spent_key, balances = totals
        month = self.month
        keys, args = [self._marker(month)], ["1" if force else "0"]
        for scope, table in (("p", spent_project), ("k", spent_key)):
            for ident, micro in table.items():
                keys.append(self._spent(scope, month, ident))
                args += (int(micro or 0), MONTH_TTL_MS)
        for ident, micro in balances.items():
            keys.append(f"{PREFIX}b:bal:{ident}")
            args += (int(micro or 0), 0)
        return bool(self._connection.run(LOAD, keys, args))

    def _reload(self) -> None:
        """Redis lost the totals (restarted empty): load them again from the store, once, in the background."""
        if self._reloading is not None and not self._reloading.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not on the server's loop (a tool): nothing to load with
        log.warning("redis has no budget totals for %s (restarted empty?): loading them from the store", self.month)

        async def reload() -> None:
            try:
                totals = await self._load()
                self._connection.call(self._write_totals, totals, False)
            except Exception as exc:
                log.error("budget totals not loaded into redis: %r", exc)

        self._reloading = loop.create_task(reload())

    # -- the Budgets methods the request path calls

    def reserve(
        self,
        project_id: str,
        key_id: str,
        micro: int,
        *,
        project_budget: int | None,
        key_budget: int | None,
        prepaid: bool,
        now_ms: int,
        hold_id: str = "",
    ) -> Hold:
        asked = self.ask(project_id, key_id, micro, project_budget, key_budget, prepaid, now_ms, hold_id)
        try:
            code, used = self._connection.run(RESERVE, asked.keys, asked.args)
        except Unavailable:
            raise refused() from None
        return self.answer(asked, int(code), int(used))

    def limit_and_reserve(
        self, limiter: SharedRateLimiter, checks: list[Check], project_id: str, key_id: str, micro: int, **terms: Any
    ) -> tuple[Admission, Hold]:
        """The rate limits and this reservation in one round trip (server/state/admission.py)."""
        from server.state.admission import limit_and_reserve

        return limit_and_reserve(limiter, self, checks, project_id, key_id, micro, **terms)

    def ask(
        self,
        project_id: str,
        key_id: str,
        micro: int,
        project_budget: int | None,
        key_budget: int | None,
        prepaid: bool,
        now_ms: int,
        hold_id: str = "",
    ) -> Asked:
        """A reservation's KEYS and ARGV for BUDGET_LUA (the script runs alone, or with the rate limits)."""
        hold = Hold(project_id, key_id, micro, prepaid, hold_id or self._connection.unique())
        month = month_key(now_ms, self.zone)
        args = (
            f"{hold.id}|{micro}",
            micro,
            -1 if key_budget is None else key_budget,
            -1 if project_budget is None else project_budget,
            1 if prepaid else 0,
            self._ttl_ms,
            1,
            MONTH_TTL_MS,
        )
        return Asked(hold, month, project_budget, key_budget, self._reserve_keys(hold, month), args)

    def answer(self, asked: Asked, code: int, used: int) -> Hold:
        """The hold a BUDGET_LUA code grants (kept open and renewed), or the documented refusal (402, 503)."""
        hold, micro = asked.hold, asked.hold.micro
        if code == 9:
            self._reload()
            raise refused()
        if code in (1, 2):
            resets = next_month_start(asked.month, self.zone).strftime("%Y-%m-%d %H:%M %Z")
            scope, budget = ("key", asked.key_budget) if code == 1 else ("project", asked.project_budget)
            assert budget is not None
            raise _budget_error(scope, budget, used, micro, resets)
        if code == 3:
            raise INSUFFICIENT_CREDITS(cost=format_credits(micro), available=format_credits(max(0, used)))
        self._open[hold.id] = hold
        return hold

    def _reserve_keys(self, hold: Hold, month: str) -> list[str]:
        year, number = (int(part) for part in month.split("-"))
        last = f"{year - 1}-12" if number == 1 else f"{year}-{number - 1:02d}"
        return [
            self._marker(month),
            *_hold_keys(hold),
            self._spent("k", month, hold.key_id),
            self._spent("p", month, hold.project_id),
            f"{PREFIX}b:bal:{hold.project_id}",
            self._marker(last),
        ]

    def restore(self, hold: Hold) -> Hold:
        """Count a hold as reserved without checking it (a job's at start-up, a forced realtime response)."""
        hold.id = hold.id or self._connection.unique()
        args = (f"{hold.id}|{hold.micro}", hold.micro, -1, -1, 1 if hold.wallet else 0, self._ttl_ms, 0, MONTH_TTL_MS)
        try:
            self._connection.run(RESERVE, self._reserve_keys(hold, self.month), args)
        except Unavailable:
            raise refused() from None
        self._open[hold.id] = hold
        return hold

    def release(self, hold: Hold) -> None:
        if hold.resolved:
            return
        hold.resolved = True
        self._open.pop(hold.id, None)
        self._apply(hold, 0, False)

    def settle(
        self, hold: Hold, actual_micro: int, *, project_budget: int | None, key_budget: int | None, now_ms: int
    ) -> list[Crossing]:
        """Drop the hold and add the actual spend; the budget thresholds this spend crossed."""
        if hold.resolved:
            return []
        hold.resolved = True
        self._open.pop(hold.id, None)
        before = self._apply(hold, actual_micro, True)
        if before is None:
            return []
        before_k, before_p = before
        month = month_key(now_ms, self.zone)
        project_id = hold.project_id
        return [
            *thresholds_crossed("project", project_id, project_id, project_budget, before_p, actual_micro, month),
            *thresholds_crossed("key", hold.key_id, project_id, key_budget, before_k, actual_micro, month),
        ]

    def _apply(self, hold: Hold, actual: int, spend: bool, entry: bool = True) -> tuple[int, int] | None:
        """Resolve `hold` in Redis; a spend adds `actual` to the totals and (`entry`) its unsettled entry, kept
        until the store has closed its request. Redis out of reach: kept here and sent on the next renew."""
        month = self.month
        keys = [*_hold_keys(hold), self._spent("k", month, hold.key_id), self._spent("p", month, hold.project_id)]
        keys += (f"{PREFIX}b:bal:{hold.project_id}", UNSETTLED)
        value = f"{hold.project_id}|{hold.key_id}|{month}|{actual}" if spend and entry else ""
        args = (f"{hold.id}|{hold.micro}", hold.micro, actual, int(hold.wallet), int(spend), hold.id, value)
        try:
            _, before_k, before_p = self._connection.run(RESOLVE, keys, args)
        except Unavailable:
            self._pending.append((hold, actual, spend))
            return None
        return int(before_k), int(before_p)

    def unspend(self, hold: Hold, actual_micro: int) -> None:
        """Undo a settle whose usage could not be recorded after all (the client was refused with 503)."""
        month = self.month
        keys = (UNSETTLED, self._spent("p", month, hold.project_id), self._spent("k", month, hold.key_id))
        try:
            self._connection.run(UNSPEND, (*keys, f"{PREFIX}b:bal:{hold.project_id}"), (hold.id, actual_micro))
        except Unavailable:
            self._unspent.append((hold, actual_micro))

    def credit(self, project_id: str, micro: int) -> None:
        """A committed ledger entry other than usage (top-up, refund, adjustment), outside `crediting`: sent as
        is, or left to the reconciler when Redis is out of reach."""
        try:
            self._connection.call(self._connection.client.incrby, f"{PREFIX}b:bal:{project_id}", micro)
        except Unavailable:
            pass  # the store has it: the next reconciliation brings the balance in line

    @contextlib.contextmanager
    def crediting(self) -> Iterator[Callable[[str, int], None]]:
        """Around a credit's store commit and its `credit(project_id, micro)` (what this yields): a fence in
        Redis from before the commit until the balance has it, so no reconciliation in between reads the
        credit from the store and then sees Redis add it a second time. Without the fence (Redis out of
        reach), the credit is left to the reconciler (the store has it), never sent late."""
        client = self._connection.client
        try:
            self._connection.call(lambda: client.pipeline().incr(CREDITING).pexpire(CREDITING, FENCE_MS).execute())
        except Unavailable:
            yield lambda project_id, micro: None
            return
        try:
            yield self.credit
        finally:
            with contextlib.suppress(Unavailable):
                self._connection.call(client.decr, CREDITING)

    # -- keeping holds alive, and catching up after an outage

    def renew(self) -> int:
        """Push the expiry of every open hold of this process forward (putting back any Redis lost); apply
        what an outage held back. Returns how many (hold, scope) pairs had to be put back."""
        self._catch_up()
        holds = list(self._open.values())
        if not holds:
            return 0
        keys: list[str] = []
        args: list[object] = [self._ttl_ms]
        for hold in holds:
            member = f"{hold.id}|{hold.micro}"
            scopes = _hold_keys(hold)[: 6 if hold.wallet else 4]
            keys += scopes
            args += [member, hold.micro] * (len(scopes) // 2)
        return int(self._connection.run(RENEW, keys, args))

    def _catch_up(self) -> None:
        pending, self._pending = self._pending, []
        unspent, self._unspent = self._unspent, []
        for hold, actual, spend in pending:
            self._apply(hold, actual, spend)
        for hold, actual in unspent:
            self.unspend(hold, actual)
