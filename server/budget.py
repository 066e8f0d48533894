"""Budgets and wallets enforced by reservation, so concurrent requests cannot overspend.

Before forwarding, a request reserves its worst-case cost against its key's and project's
monthly budgets and, for a prepaid project, its wallet balance. The reservation is refused if it
does not fit beside what is already spent and reserved. When the call ends the hold resolves
exactly once: `settle` (after the usage and ledger debit are committed) turns it into spend at the
actual cost; `release` drops it. The check and the reservation happen in memory on the single event
loop, so they are atomic; each hold is also written with its request's intent (the `holds` table) and
resolved in the same transaction as its outcome, so holds outlive the process: at start-up the open
ones that still matter (a running job's) are put back with `restore`, spend is rebuilt from the usage
table and balances from the ledger.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from server.errors import BUDGET_EXCEEDED, INSUFFICIENT_CREDITS, GatewayError
from server.money import format_credits

THRESHOLDS = (50, 80, 100)


def month_key(now_ms: int, zone: str) -> str:
    return datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(ZoneInfo(zone)).strftime("%Y-%m")


def month_start_ms(now_ms: int, zone: str) -> int:
    local = datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(ZoneInfo(zone))
    return int(local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)


def next_month_start(month: str, zone: str) -> datetime:
    year, mon = (int(p) for p in month.split("-"))
    year, mon = (year + 1, 1) if mon == 12 else (year, mon + 1)
    return datetime(year, mon, 1, tzinfo=ZoneInfo(zone))


@dataclass(slots=True)
class Hold:
    """Money reserved for one request (or job, or session); resolved exactly once."""

    project_id: str
    key_id: str
    micro: int
    wallet: bool
    id: str = ""
    resolved: bool = False


@dataclass(slots=True)
class Crossing:
    """A budget threshold crossed for the first time this month (becomes an outbox event)."""

    scope: str  # "project" | "key"
    scope_id: str
    project_id: str
    percent: int
    month: str
    budget_micro: int
    spent_micro: int


@dataclass
class Budgets:
    zone: str
    month: str
    spent_project: dict[str, int] = field(default_factory=dict)
    spent_key: dict[str, int] = field(default_factory=dict)
    reserved_project: dict[str, int] = field(default_factory=dict)
    reserved_key: dict[str, int] = field(default_factory=dict)
    balances: dict[str, int] = field(default_factory=dict)
    reserved_wallet: dict[str, int] = field(default_factory=dict)
    open_holds: int = 0
    _month_ends_ms: int = 0  # when `month` ends: a time zone's calendar is read once a month, not per request

    def roll(self, now_ms: int) -> None:
        """A new calendar month starts every budget from zero (reservations carry over)."""
        if now_ms < self._month_ends_ms:
            return
        current = month_key(now_ms, self.zone)
        if current != self.month:
            self.month = current
            self.spent_project.clear()
            self.spent_key.clear()
        self._month_ends_ms = int(next_month_start(current, self.zone).timestamp() * 1000)

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
        self.roll(now_ms)
        if key_budget is not None:
            used = self.spent_key.get(key_id, 0) + self.reserved_key.get(key_id, 0)
            if used + micro > key_budget:
                raise _budget_error("key", key_budget, used, micro, self._resets())
        if project_budget is not None:
            used = self.spent_project.get(project_id, 0) + self.reserved_project.get(project_id, 0)
            if used + micro > project_budget:
                raise _budget_error("project", project_budget, used, micro, self._resets())
        if prepaid:
            available = self.balances.get(project_id, 0) - self.reserved_wallet.get(project_id, 0)
            if micro > available:
                raise INSUFFICIENT_CREDITS(cost=format_credits(micro), available=format_credits(max(0, available)))
        return self.restore(Hold(project_id, key_id, micro, prepaid, hold_id))

    def _resets(self) -> str:
        return next_month_start(self.month, self.zone).strftime("%Y-%m-%d %H:%M %Z")

    def restore(self, hold: Hold) -> Hold:
        """Count a hold as reserved without checking it (at start-up, a durable hold that stays open)."""
        _add(self.reserved_key, hold.key_id, hold.micro)
        _add(self.reserved_project, hold.project_id, hold.micro)
        if hold.wallet:
            _add(self.reserved_wallet, hold.project_id, hold.micro)
        self.open_holds += 1
        return hold

    def release(self, hold: Hold) -> None:
        if hold.resolved:
            return
        hold.resolved = True
        self.open_holds -= 1
        _add(self.reserved_key, hold.key_id, -hold.micro)
        _add(self.reserved_project, hold.project_id, -hold.micro)
        if hold.wallet:
            _add(self.reserved_wallet, hold.project_id, -hold.micro)

    def settle(
        self, hold: Hold, actual_micro: int, *, project_budget: int | None, key_budget: int | None, now_ms: int
    ) -> list[Crossing]:
        """Release the hold and record the actual spend (already committed with its ledger debit)."""
        if hold.resolved:
            return []
        self.release(hold)
        self.roll(now_ms)
        self.balances[hold.project_id] = self.balances.get(hold.project_id, 0) - actual_micro
        crossings = []
        for scope, spent, scope_id, budget in (
            ("project", self.spent_project, hold.project_id, project_budget),
            ("key", self.spent_key, hold.key_id, key_budget),
        ):
            before = spent.get(scope_id, 0)
            spent[scope_id] = before + actual_micro
            crossings += thresholds_crossed(scope, scope_id, hold.project_id, budget, before, actual_micro, self.month)
        return crossings

    def unspend(self, hold: Hold, actual_micro: int) -> None:
        """Undo a settle whose usage could not be recorded after all (the client was refused with 503)."""
        self.balances[hold.project_id] = self.balances.get(hold.project_id, 0) + actual_micro
        _add(self.spent_project, hold.project_id, -actual_micro)
        _add(self.spent_key, hold.key_id, -actual_micro)

    def credit(self, project_id: str, micro: int) -> None:
        """A committed ledger entry other than usage (top-up, refund, adjustment)."""
        self.balances[project_id] = self.balances.get(project_id, 0) + micro

    def crediting(self) -> contextlib.AbstractContextManager[Callable[[str, int], None]]:
        """Around a credit's store commit: yields `credit` (in memory nothing else; on Redis a fence against the
        reconciliation counting it twice, server/state/budgets.py)."""
        return contextlib.nullcontext(self.credit)


def thresholds_crossed(
    scope: str, scope_id: str, project_id: str, budget: int | None, before: int, actual_micro: int, month: str
) -> list[Crossing]:
    """The thresholds (50, 80, 100 %) of `budget` that a spend of `actual_micro` from `before` crosses."""
    if not budget:
        return []
    after = before + actual_micro
    return [
        Crossing(scope, scope_id, project_id, percent, month, budget, after)
        for percent in THRESHOLDS
        if before < budget * percent // 100 <= after
    ]


def _add(table: dict[str, int], key: str, delta: int) -> None:
    value = table.get(key, 0) + delta
    if value:
        table[key] = value
    else:
        table.pop(key, None)


def _budget_error(scope: str, budget: int, used: int, micro: int, resets: str) -> GatewayError:
    return BUDGET_EXCEEDED(
        scope=scope,
        used=format_credits(used),
        budget=format_credits(budget),
        cost=format_credits(micro),
        resets=resets,
    )
