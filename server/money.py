"""Money is integer micro-units; these helpers are the only place decimals meet integers."""

from __future__ import annotations

from decimal import Decimal

MICRO = 1_000_000
MAX_AMOUNT_MICRO = 10**15  # one billion currency units: any single amount beyond it is a mistake


def to_micro(amount: Decimal | int | str) -> int:
    """Currency units (exact decimal) to integer micro-units; refuses sub-micro precision."""
    value = Decimal(str(amount)) * MICRO
    if value != value.to_integral_value():
        raise ValueError(f"{amount} has more precision than one micro-unit")
    return int(value)


def format_credits(micro: int) -> str:
    """Micro-units as a currency amount with up to 6 decimals, e.g. 1500 -> '0.0015'."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), MICRO)
    text = f"{whole}.{frac:06d}".rstrip("0").rstrip(".")
    return sign + text


def credits_number(micro: int) -> float:
    """For JSON `usage.cost` only (display); stored money never goes through floats."""
    return micro / MICRO
