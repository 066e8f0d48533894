"""Token counts reported by a provider are untrusted input: these helpers accept only sane integers.

A count is an int (never a bool, a float or a string) between 0 and MAX_COUNT. Translators use
`add` so that one bad field makes the whole sum unknown (None) instead of raising; the gateway then
estimates the usage and marks it estimated.
"""

from __future__ import annotations

from typing import Any

MAX_COUNT = 100_000_000  # no single request reports more tokens than this; more is a broken provider


def count(value: Any, *, default: int | None = 0) -> int | None:
    """`value` as a count; `default` when it is absent (None); None when it is not a sane count."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        return None
    return value


def add(*values: Any) -> int | None:
    """The sum of counts (absent ones are 0); None as soon as one is not a sane count."""
    total = 0
    for value in values:
        checked = count(value)
        if checked is None:
            return None
        total += checked
    return total
