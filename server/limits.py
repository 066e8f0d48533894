"""Rate limits, in memory on the hot path: per key (RPM, TPM), per plan per endpoint class, per client IP.

Algorithm: a sliding-window log (timestamped entries, summed). Chosen over GCRA because it is
exact: "exactly RPM requests pass in any 60 s window" holds with no burst allowance to explain,
the remaining count and reset time in the headers are literal, and token entries can be corrected
to the actual usage after a call ends (GCRA can only add). Memory is one entry per admitted request
in the window, bounded by the limit itself; idle windows are dropped by `prune`.

The per-client-IP safety net is different: one entry per client seen, for many clients, at a limit
of thousands per 10 minutes, would make a log cost ~136 bytes per request held for the whole window.
It uses GCRA instead (one float per client, O(1) memory; a burst of `limit` then `limit` per window,
exact enough for a safety net); idle clients are dropped by `prune`.

All checks for a request are evaluated first and only then committed, so a request refused by
one limit consumes nothing from the others. The event loop is single-threaded, so check+commit is
atomic under any concurrency.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from server.errors import RATE_LIMIT_EXCEEDED


class Window:
    """Sliding-window log: (time, amount) entries within `seconds`, summed against `limit`."""

    __slots__ = ("entries", "limit", "seconds", "total")

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self.entries: deque[list[float]] = deque()
        self.total = 0

    def _evict(self, now: float) -> None:
        horizon = now - self.seconds
        entries = self.entries
        while entries and entries[0][0] <= horizon:
            self.total -= int(entries.popleft()[1])

    def wait_for(self, now: float, amount: int) -> float:
        """Seconds until `amount` fits (0 when it fits now; inf when it never can)."""
        self._evict(now)
        if self.total + amount <= self.limit:
            return 0.0
        if amount > self.limit:
            return math.inf
        freed = 0
        for when, size in self.entries:
            freed += int(size)
            if self.total - freed + amount <= self.limit:
                return max(0.0, when + self.seconds - now)
        return self.seconds

    def add(self, now: float, amount: int) -> list[float]:
        entry = [now, float(amount)]
        self.entries.append(entry)
        self.total += amount
        return entry

    def correct(self, entry: list[float], amount: int) -> None:
        """Replace an entry's amount (an estimate) with the actual one, if it is still in the window."""
        if self.entries and entry[0] >= self.entries[0][0]:
            self.total += amount - int(entry[1])
        entry[1] = float(amount)

    def remaining(self) -> int:
        return max(0, self.limit - self.total)

    def reset_after(self, now: float) -> float:
        """Seconds until the window is fully replenished."""
        return max(0.0, self.entries[-1][0] + self.seconds - now) if self.entries else 0.0

    def idle(self, now: float) -> bool:
        self._evict(now)
        return not self.entries


class Pace:
    """GCRA: the theoretical arrival time of the next request; `limit` may arrive at once, then they are
    spaced `seconds / limit` apart. One float of state per client."""

    __slots__ = ("interval", "limit", "seconds", "tat")

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self.interval = seconds / limit
        self.tat = 0.0

    def wait_for(self, now: float, amount: int) -> float:
        if amount > self.limit:
            return math.inf
        due = max(self.tat, now) + self.interval * amount
        return max(0.0, due - now - self.seconds)

    def add(self, now: float, amount: int) -> None:
        self.tat = max(self.tat, now) + self.interval * amount

    def remaining(self) -> int:
        return self.limit  # reported only for the tightest request limit, never this safety net's

    def reset_after(self, now: float) -> float:
        return max(0.0, self.tat - now)

    def idle(self, now: float) -> bool:
        return self.tat <= now


def format_reset(seconds: float) -> str:
    """OpenAI's reset format: '20ms', '1.5s', '6m0s'."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{round(rest):d}s"


@dataclass(slots=True)
class Check:
    window: Window | Pace
    amount: int
    label: str  # says which limit, e.g. "key rpm" or "plan 'standard' chat rpm"
    unit: str  # "requests" | "tokens"


@dataclass
class Admission:
    """What the limiter granted: headers for the response, and token entries to correct later."""

    headers: dict[str, str] = field(default_factory=dict)
    token_entries: list[tuple[Window | Pace, list[float]]] = field(default_factory=list)

    def settle_tokens(self, actual: int) -> None:
        for window, entry in self.token_entries:
            if isinstance(window, Window):
                window.correct(entry, actual)
        self.token_entries.clear()


PRUNE_EVERY = 10_000  # admissions between sweeps of idle windows (one per client IP and key seen)


class RateLimiter:
    def __init__(self) -> None:
        self._windows: dict[tuple[str, ...], Window | Pace] = {}
        self._until_prune = PRUNE_EVERY

    def window(self, key: tuple[str, ...], limit: int, seconds: float) -> Window:
        """An exact sliding-window log (keys and plans: bounded by their own limits)."""
        found = self._windows.get(key)
        if not isinstance(found, Window) or found.limit != limit or found.seconds != seconds:
            found = Window(limit, seconds)
            self._windows[key] = found
        return found

    def pace(self, key: tuple[str, ...], limit: int, seconds: float) -> Pace:
        """A GCRA pace (the per-IP net: O(1) memory per client)."""
        found = self._windows.get(key)
        if not isinstance(found, Pace) or found.limit != limit or found.seconds != seconds:
            found = Pace(limit, seconds)
            self._windows[key] = found
        return found

    def __len__(self) -> int:
        return len(self._windows)

    def admit(self, checks: list[Check], now: float) -> Admission:
        """Commit every check or none; raise 429 naming the limit that refused and when it resets."""
        self._until_prune -= 1
        if self._until_prune <= 0:  # memory stays bounded by the clients active in the last window
            self._until_prune = PRUNE_EVERY
            self.prune(now)
        for check in checks:
            wait = check.window.wait_for(now, check.amount)
            if wait > 0:
                if math.isinf(wait):
                    message = (
                        f"Rate limit exceeded: this request needs {check.amount} {check.unit} but the {check.label}"
                        f" limit is {check.window.limit} per {int(check.window.seconds)}s."
                    )
                    retry = check.window.seconds
                else:
                    message = (
                        f"Rate limit exceeded: {check.label} limit of {check.window.limit} {check.unit} per"
                        f" {int(check.window.seconds)}s reached; resets in {format_reset(wait)}."
                    )
                    retry = wait
                headers = {"retry-after": str(max(1, math.ceil(retry)))}
                headers.update(_headers(checks, now))
                raise RATE_LIMIT_EXCEEDED(detail=message, headers=headers)
        admission = Admission()
        for check in checks:
            entry = check.window.add(now, check.amount)
            if check.unit == "tokens" and entry is not None:
                admission.token_entries.append((check.window, entry))
        admission.headers = _headers(checks, now)
        return admission

    def prune(self, now: float) -> int:
        """Drop windows with nothing left in them (idle IPs and keys); returns how many."""
        idle = [key for key, w in self._windows.items() if w.idle(now)]
        for key in idle:
            del self._windows[key]
        return len(idle)


def _headers(checks: list[Check], now: float) -> dict[str, str]:
    """The tightest request limit and the tightest token limit, OpenAI's header names."""
    headers: dict[str, str] = {}
    for unit in ("requests", "tokens"):
        relevant = [c.window for c in checks if c.unit == unit and isinstance(c.window, Window)]
        if not relevant:
            continue
        tightest = min(relevant, key=lambda w: (w.remaining(), -w.limit))
        headers[f"x-ratelimit-limit-{unit}"] = str(tightest.limit)
        headers[f"x-ratelimit-remaining-{unit}"] = str(tightest.remaining())
        headers[f"x-ratelimit-reset-{unit}"] = format_reset(tightest.reset_after(now))
    return headers
