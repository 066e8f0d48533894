"""Money is integer micro-units; these helpers are the only place decimals meet integers.

`parse_amount` is the one gate for amounts typed by people (CLI options, admin API bodies): it
refuses what is not a finite decimal, finer than a micro-unit, negative or zero where that makes no
sense, or absurdly large, with a sentence that says which. `format_money` shows an amount with its
currency, exact (up to 6 decimals) or rounded half-up to the currency's usual decimals (invoices).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

MICRO = 1_000_000
MAX_UNITS = 1_000_000_000  # one billion currency units: anything larger is a typo, not a budget
MAX_AMOUNT_MICRO = MAX_UNITS * MICRO

# ISO 4217 minor units where they are not 2 (the usual decimals of a currency).
_DECIMALS = {
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(
        (
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ),
        0,
    ),
}
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


def to_micro(amount: Decimal | int | str) -> int:
    """Currency units (exact decimal) to integer micro-units; refuses sub-micro precision."""
    value = Decimal(str(amount)) * MICRO
    if value != value.to_integral_value():
        raise ValueError(f"{amount} has more precision than one micro-unit")
    return int(value)


def parse_amount(text: object, *, negative: bool = False, zero: bool = True) -> int:
    """An amount typed by a person (currency units) as micro-units; ValueError says what is wrong."""
    shown = str(text).strip()
    if isinstance(text, bool) or not shown:
        raise ValueError(f"{shown!r} is not an amount; write it like 20 or 0.50")
    try:
        value = Decimal(shown)
    except (InvalidOperation, ValueError):
        raise ValueError(f"{shown!r} is not an amount; write it like 20 or 0.50") from None
    if not value.is_finite():
        raise ValueError(f"{shown!r} is not an amount; write it like 20 or 0.50")
    if value.adjusted() > 9 or abs(value) > MAX_UNITS:  # adjusted(): the exponent, safe for 1e999999999
        raise ValueError(f"{shown} is more than the largest amount accepted ({MAX_UNITS:,})")
    micro = value * MICRO
    if (value != 0 and value.adjusted() < -6) or micro != micro.to_integral_value():
        raise ValueError(f"{shown} is finer than the smallest unit (0.000001)")
    if micro < 0 and not negative:
        raise ValueError(f"{shown} is negative; amounts here must be 0 or more" if zero else f"{shown} is negative")
    if micro == 0 and not zero:
        raise ValueError("the amount must not be zero")
    return int(micro)


def currency_decimals(currency: str) -> int:
    return _DECIMALS.get(currency.upper(), 2)


def format_credits(micro: int) -> str:
    """Micro-units as a currency amount with up to 6 decimals, e.g. 1500 -> '0.0015'."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), MICRO)
    text = f"{whole}.{frac:06d}".rstrip("0").rstrip(".")
    return sign + text


def format_number(micro: int, decimals: int, *, exact: bool = True, grouping: bool = False) -> str:
    """The number alone: exact shows at least `decimals` and up to 6 (never hides a micro-unit);
    otherwise rounded half-up (away from zero) to `decimals`."""
    sign = "-" if micro < 0 else ""
    magnitude = abs(micro)
    if exact:
        whole, frac = divmod(magnitude, MICRO)
        digits = f"{frac:06d}".rstrip("0").ljust(decimals, "0")
    else:
        step = 10 ** (6 - decimals)
        units, rest = divmod(magnitude, step)
        units += 1 if 2 * rest >= step else 0
        whole, frac = divmod(units, 10**decimals)
        digits = f"{frac:0{decimals}d}" if decimals else ""
    head = f"{whole:,}" if grouping else str(whole)
    return f"{sign}{head}.{digits}" if digits else f"{sign}{head}"


def format_money(micro: int, currency: str, *, exact: bool = True, symbol: bool = True, grouping: bool = False) -> str:
    """`$12.50`, `$0.00011`, `-€3.00`, `1,200 JPY`; with symbol=False always the code after the number."""
    code = currency.upper()
    number = format_number(micro, currency_decimals(code), exact=exact, grouping=grouping)
    mark = _SYMBOLS.get(code) if symbol else None
    if mark is None:
        return f"{number} {code}"
    return f"-{mark}{number[1:]}" if number.startswith("-") else f"{mark}{number}"


def credits_number(micro: int) -> float:
    """For JSON `usage.cost` only (display); stored money never goes through floats."""
    return micro / MICRO
