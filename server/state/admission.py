"""Rate limits and the budget reservation of one call on Redis in one round trip (one Lua script).

Why: they were two scripts, two round trips on the request path. Run as one, they stay exact (Redis runs a
script atomically, so no other process slips between the checks and the writes) and keep the memory path's
rules: the rate limits are checked first (a 429 commits nothing); then the reservation; a call the budget or
wallet refuses (402) still uses its request slots, with its tokens counted at zero, which is what
`RateLimiter.admit` followed by `settle_tokens(0)` leaves in memory; a call that fits commits both.

Failure behaviour: Redis out of reach raises 503 `metering_unavailable` (nothing admitted); totals that Redis
lost (restarted empty) give 503 before anything is committed, while they are loaded again.
"""

from __future__ import annotations

from server.budget import Hold
from server.errors import GatewayError
from server.limits import Admission, Check
from server.state.budgets import BUDGET_ARGS, BUDGET_KEYS, BUDGET_LUA, SharedBudgets
from server.state.connection import CLOCK_LUA, Script, Unavailable, refused
from server.state.limits import LIMITS_LUA, SharedRateLimiter

NOT_ASKED = -1  # the budget code when a rate limit refused first

# KEYS: BUDGET_LUA's 11, then LIMITS_LUA's; ARGV: BUDGET_LUA's 8, then LIMITS_LUA's (uid first).
# Reply: budget code, used or available, then ADMIT's reply.
ADMIT_AND_RESERVE = Script(
    CLOCK_LUA
    + BUDGET_LUA
    + LIMITS_LUA
    + f"""
local k0, a0 = {BUDGET_KEYS}, {BUDGET_ARGS + 1}
local n = (#KEYS - k0) / 2
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('EXISTS', KEYS[11]) == 0 then
  return {{9, 0, 0, 0, 0}}
end
local out, plan = limits_check(k0, a0, n, now)
if out[1] == 0 then
  table.insert(out, 1, 0)
  table.insert(out, 1, {NOT_ASKED})
  return out
end
local code, used = budget_check(0, 0, now)
if code == 0 then budget_commit(0, 0, now) end
limits_commit(k0, a0, n, now, plan, out, code ~= 0)
table.insert(out, 1, used)
table.insert(out, 1, code)
return out
"""
)


def limit_and_reserve(
    limiter: SharedRateLimiter,
    budgets: SharedBudgets,
    checks: list[Check],
    project_id: str,
    key_id: str,
    micro: int,
    *,
    project_budget: int | None,
    key_budget: int | None,
    prepaid: bool,
    now_ms: int,
    hold_id: str = "",
) -> tuple[Admission, Hold]:
    """The call's admission and hold, in one round trip; raises 429 (a limit), 402 (budget, wallet) or 503.
    A 402 carries the rate-limit headers, as in memory."""
    asked = budgets.ask(project_id, key_id, micro, project_budget, key_budget, prepaid, now_ms, hold_id)
    keys, args = limiter.pack(checks)
    try:
        reply = budgets.connection.run(ADMIT_AND_RESERVE, [*asked.keys, *keys], [*asked.args, *args])
    except Unavailable:
        raise refused() from None
    code, used, limits = int(reply[0]), int(reply[1]), reply[2:]
    if code == 9:
        return Admission(), budgets.answer(asked, code, used)  # raises 503 (and loads the totals again)
    admission = limiter.granted(checks, args, limits, tokens=code == 0)  # raises 429 when code is NOT_ASKED
    try:
        return admission, budgets.answer(asked, code, used)
    except GatewayError as exc:
        exc.headers = {**admission.headers, **exc.headers}
        raise
