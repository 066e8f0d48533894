"""Rate limits on Redis: the same sliding-window logs and GCRA paces as server/limits.py, exact across
every process of a fleet.

One Lua script per admission evaluates every check of a request and commits all or none (Redis runs a
script atomically, so no other process can slip between the check and the write: no read-then-write).
Time is Redis's own clock (`TIME`), so processes on several machines agree on the windows.

A window is a sorted set of entries (score: admission time in ms; member: a fleet-unique id and the
amount) plus a running total; eviction subtracts what leaves the window. A pace is one number (the
theoretical arrival time). Keys expire with their window, so idle clients cost nothing.

Failure behaviour: Redis out of reach raises 503 `metering_unavailable` (server/state/connection.py);
a token correction after the call is best effort, sent in batches off the request's path (an
estimate left counted errs on the safe side: never under-limited).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from server.errors import RATE_LIMIT_EXCEEDED
from server.limits import Admission, Check, format_reset
from server.state.connection import CLOCK_LUA, PREFIX, Connection, Ride, Script, Unavailable, refused

# The windows' check and commit, as Lua functions other scripts compose (server/state/admission.py runs them
# with the budget reservation). KEYS[k0 + 1 ..]: a window (or pace) and its total per check; ARGV[a0]: the
# admission's fleet-unique id, then five per check: kind ('w' window, 'p' pace), limit, window ms, amount,
# and the amount committed instead when the budget refuses the call (its request slot counts, its tokens
# do not: what the memory path leaves after `settle_tokens(0)`).
LIMITS_LUA = """
local function limits_check(k0, a0, n, now)
  local out = {1, 0, 0}
  local refused, refused_wait = 0, 0
  local plan = {}
  for i = 1, n do
    local key, total_key = KEYS[k0 + 2 * i - 1], KEYS[k0 + 2 * i]
    local base = a0 + (i - 1) * 5
    local kind, limit, window, amount = ARGV[base + 1], tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3]),
      tonumber(ARGV[base + 4])
    local wait, remaining, reset = 0, limit, 0
    if kind == 'w' then
      local horizon = now - window
      local gone = redis.call('ZRANGEBYSCORE', key, '-inf', horizon)
      local total = tonumber(redis.call('GET', total_key) or '0')
      if #gone > 0 then
        for _, member in ipairs(gone) do
          total = total - tonumber(string.match(member, '|(%d+)$'))
        end
        redis.call('ZREMRANGEBYSCORE', key, '-inf', horizon)
        if total > 0 then redis.call('SET', total_key, total, 'PX', window) else redis.call('DEL', total_key) end
      end
      if total + amount > limit then
        if amount > limit then
          wait = -1
        else
          wait = window
          local freed = 0
          local entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
          for j = 1, #entries, 2 do
            freed = freed + tonumber(string.match(entries[j], '|(%d+)$'))
            if total - freed + amount <= limit then
              wait = math.max(1, tonumber(entries[j + 1]) + window - now)
              break
            end
          end
        end
      end
      plan[i] = total
      remaining = limit - total
      local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
      if #last > 0 then reset = math.max(0, tonumber(last[2]) + window - now) end
    else
      local tat = tonumber(redis.call('GET', key) or '0')
      local interval = window / limit
      if amount > limit then
        wait = -1
      else
        local due = math.max(tat, now) + interval * amount
        if due - now - window > 0 then wait = math.ceil(due - now - window) end
      end
      plan[i] = tat
    end
    if wait ~= 0 and refused == 0 then
      refused = i
      refused_wait = wait
    end
    out[#out + 1] = remaining
    out[#out + 1] = reset
  end
  if refused > 0 then
    out[1] = 0
    out[2] = refused
    out[3] = refused_wait
  end
  return out, plan
end

local function limits_commit(k0, a0, n, now, plan, out, kept)
  local uid = ARGV[a0]
  for i = 1, n do
    local key, total_key = KEYS[k0 + 2 * i - 1], KEYS[k0 + 2 * i]
    local base = a0 + (i - 1) * 5
    local kind, limit, window = ARGV[base + 1], tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
    local amount = tonumber(ARGV[base + (kept and 5 or 4)])
    if kind == 'w' then
      redis.call('ZADD', key, now, uid .. ':' .. i .. '|' .. amount)
      redis.call('PEXPIRE', key, window)
      redis.call('SET', total_key, plan[i] + amount, 'PX', window)
      out[3 + 2 * i - 1] = limit - plan[i] - amount
      out[3 + 2 * i] = window
    else
      local tat = math.max(plan[i], now) + (window / limit) * amount
      redis.call('SET', key, tostring(tat), 'PX', math.ceil(tat - now) + 1)
    end
  end
  out[3] = now
end
"""

# KEYS and ARGV as LIMITS_LUA with k0 = 0, a0 = 1. Reply: ok (0/1), the refusing check (1-based), its wait in
# ms (-1: never fits), then remaining and reset ms per check.
ADMIT = Script(
    CLOCK_LUA
    + LIMITS_LUA
    + """
local n = #KEYS / 2
local out, plan = limits_check(0, 1, n, now)
if out[1] == 1 then limits_commit(0, 1, n, now, plan, out, false) end
return out
"""
)

# KEYS: a window and its total per correction; ARGV: the admitted member, its corrected member, the delta
CORRECT = Script(
    """
local done = 0
for i = 1, #KEYS / 2 do
  local key, total_key = KEYS[2 * i - 1], KEYS[2 * i]
  local old, new, delta = ARGV[3 * i - 2], ARGV[3 * i - 1], tonumber(ARGV[3 * i])
  local score = redis.call('ZSCORE', key, old)
  local ttl = redis.call('PTTL', total_key)
  if score and ttl > 0 then
    redis.call('ZREM', key, old)
    redis.call('ZADD', key, score, new)
    redis.call('SET', total_key, tonumber(redis.call('GET', total_key) or '0') + delta, 'PX', ttl)
    done = done + 1
  end
end
return done
"""
)
FLUSH_S = 0.02  # token corrections are sent together, this long after the first waiting one


@dataclass(slots=True, frozen=True)
class SharedWindow:
    """A sliding-window log kept in Redis (what `RateLimiter.window` returns in memory)."""

    key: str
    limit: int
    seconds: float
    kind: str = "w"


@dataclass(slots=True, frozen=True)
class SharedPace:
    """A GCRA pace kept in Redis (the per-IP safety net)."""

    key: str
    limit: int
    seconds: float
    kind: str = "p"


class SharedAdmission(Admission):
    """An admission whose token entries live in Redis; corrected once the call's actual usage is known."""

    def __init__(self, limiter: SharedRateLimiter) -> None:
        super().__init__()
        self._limiter = limiter

    def settle_tokens(self, actual: int) -> None:
        entries, self.token_entries = self.token_entries, []
        for window, member in entries:
            self._limiter.correct(window, member, actual)  # type: ignore[arg-type]


class SharedRateLimiter:
    """The `RateLimiter` of a fleet: same `window`, `pace` and `admit`, state in Redis."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._corrections: list[tuple[str, str, str, str, int]] = []
        self._flush: asyncio.TimerHandle | None = None
        connection.ride(self._waiting)

    def correct(self, window: SharedWindow, member: str, amount: int) -> None:
        """Replace an admitted entry's amount (its estimate) with the actual one while it is in the window.
        Queued, and sent in the same round trip as the next script this process runs (the call's own
        settlement, which follows at once), or by a timer FLUSH_S later when none runs; best effort: an
        estimate left counted errs on the safe side."""
        head, _, old = member.rpartition("|")
        if amount == int(old):
            return
        self._corrections.append((window.key, window.key + ":t", member, f"{head}|{amount}", amount - int(old)))
        if self._flush is not None:
            return
        try:
            self._flush = asyncio.get_running_loop().call_later(FLUSH_S, self.flush)
        except RuntimeError:  # not on an event loop (a tool, a test): at once
            self.flush()

    def _waiting(self) -> Ride | None:
        """The corrections waiting, as one CORRECT call (taken: sent by whoever asked)."""
        waiting, self._corrections = self._corrections, []
        if not waiting:
            return None
        keys = [k for key, total, *_ in waiting for k in (key, total)]
        args = [a for *_, old, new, delta in waiting for a in (old, new, delta)]
        return CORRECT, keys, args

    def flush(self) -> None:
        """Send the corrections still waiting (no other script carried them)."""
        self._flush = None
        ride = self._waiting()
        if ride is None:
            return
        try:
            self._connection.run(*ride)
        except Unavailable:
            pass

    def window(self, key: tuple[str, ...], limit: int, seconds: float) -> SharedWindow:
        return SharedWindow(PREFIX + "rl:" + ":".join(key), limit, seconds)

    def pace(self, key: tuple[str, ...], limit: int, seconds: float) -> SharedPace:
        return SharedPace(PREFIX + "rl:" + ":".join(key), limit, seconds)

    def __len__(self) -> int:
        return 0  # nothing held in this process

    def prune(self, now: float) -> int:
        return 0  # Redis expires idle windows itself

    def admit(self, checks: list[Check], now: float) -> Admission:
        """Commit every check or none, in one script; raise 429 naming the limit that refused."""
        if not checks:
            return SharedAdmission(self)
        keys, args = self.pack(checks)
        try:
            reply = self._connection.run(ADMIT, keys, args)
        except Unavailable:
            raise refused() from None
        return self.granted(checks, args, reply)

    def pack(self, checks: list[Check]) -> tuple[list[str], list[object]]:
        """The KEYS and ARGV of LIMITS_LUA for `checks` (ARGV starts with the admission's fleet-unique id)."""
        keys: list[str] = []
        args: list[object] = [self._connection.unique()]
        for check in checks:
            window = check.window
            kept = 0 if check.unit == "tokens" else check.amount
            keys += (window.key, window.key + ":t")  # type: ignore[union-attr]
            args += (window.kind, window.limit, int(window.seconds * 1000), check.amount, kept)  # type: ignore[union-attr]
        return keys, args

    def granted(self, checks: list[Check], args: list[object], reply: list[int], tokens: bool = True) -> Admission:
        """The admission a LIMITS_LUA reply grants, or the 429 naming the limit that refused. `tokens=False`:
        the token entries were committed at zero (the budget refused the call), nothing to correct."""
        ok, index, wait_ms = int(reply[0]), int(reply[1]), int(reply[2])
        figures = [(int(reply[3 + 2 * i]), int(reply[4 + 2 * i])) for i in range(len(checks))]
        headers = _headers(checks, figures)
        if not ok:
            check = checks[index - 1]
            window = check.window
            if wait_ms < 0:
                message = (
                    f"Rate limit exceeded: this request needs {check.amount} {check.unit} but the {check.label}"
                    f" limit is {window.limit} per {int(window.seconds)}s."
                )
                retry = window.seconds
            else:
                message = (
                    f"Rate limit exceeded: {check.label} limit of {window.limit} {check.unit} per"
                    f" {int(window.seconds)}s reached; resets in {format_reset(wait_ms / 1000)}."
                )
                retry = wait_ms / 1000
            raise RATE_LIMIT_EXCEEDED(detail=message, headers={"retry-after": str(max(1, math.ceil(retry))), **headers})
        admission = SharedAdmission(self)
        uid = args[0]
        for i, check in enumerate(checks, 1):
            if tokens and check.unit == "tokens" and isinstance(check.window, SharedWindow):
                admission.token_entries.append((check.window, f"{uid}:{i}|{check.amount}"))  # type: ignore[arg-type]
        admission.headers = headers
        return admission


def _headers(checks: list[Check], figures: list[tuple[int, int]]) -> dict[str, str]:
    """The tightest request limit and the tightest token limit, OpenAI's header names (as in memory)."""
    headers: dict[str, str] = {}
    for unit in ("requests", "tokens"):
        relevant = [
            (max(0, remaining), check.window.limit, reset)
            for check, (remaining, reset) in zip(checks, figures, strict=True)
            if check.unit == unit and isinstance(check.window, SharedWindow)
        ]
        if not relevant:
            continue
        remaining, limit, reset = min(relevant, key=lambda r: (r[0], -r[1]))
        headers[f"x-ratelimit-limit-{unit}"] = str(limit)
        headers[f"x-ratelimit-remaining-{unit}"] = str(remaining)
        headers[f"x-ratelimit-reset-{unit}"] = format_reset(reset / 1000)
    return headers
