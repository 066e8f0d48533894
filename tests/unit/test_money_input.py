"""Money typed by people: one parser for the CLI and the admin API, and how amounts are shown."""

from __future__ import annotations

import pytest

from server.money import MAX_AMOUNT_MICRO, format_money, format_number, parse_amount


@pytest.mark.parametrize(
    ("text", "micro"),
    [("20", 20_000_000), ("0.50", 500_000), (" 1_000 ", 1_000_000_000), ("0.000001", 1), ("1e3", 1_000_000_000)],
)
def test_amounts_become_exact_micro_units(text: str, micro: int) -> None:
    assert parse_amount(text) == micro


@pytest.mark.parametrize(
    ("text", "kwargs", "says"),
    [
        ("-3", {}, "negative"),
        ("-0.01", {"zero": False}, "negative"),
        ("0", {"zero": False}, "must not be zero"),
        ("0.0000001", {}, "finer than the smallest unit"),
        ("1e-999999999", {}, "finer than the smallest unit"),
        ("1000000001", {}, "more than the largest amount"),
        ("-1e10", {"negative": True}, "more than the largest amount"),
        ("1e999999999", {}, "more than the largest amount"),
        ("NaN", {}, "not an amount"),
        ("sNaN", {}, "not an amount"),
        ("Infinity", {}, "not an amount"),
        ("", {}, "not an amount"),
        ("twelve", {}, "not an amount"),
        (True, {}, "not an amount"),
    ],
)
def test_negative_absurd_or_malformed_amounts_are_refused(text: object, kwargs: dict[str, bool], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_amount(text, **kwargs)


def test_the_limits_are_inclusive_and_negative_only_when_allowed() -> None:
    assert parse_amount("1000000000") == MAX_AMOUNT_MICRO
    assert parse_amount("-5", negative=True) == -5_000_000
    assert parse_amount("0") == 0


@pytest.mark.parametrize(
    ("micro", "currency", "exact", "shown"),
    [
        (110, "USD", True, "$0.00011"),
        (12_500_000, "USD", True, "$12.50"),
        (-3_000_000, "EUR", True, "-€3.00"),
        (1_200_000_000, "JPY", True, "1200 JPY"),
        (2_470_134, "USD", False, "$2.47"),
        (2_475_000, "USD", False, "$2.48"),  # half up
        (-2_475_000, "USD", False, "-$2.48"),  # half away from zero
        (1_234_567, "KWD", False, "1.235 KWD"),
        (1_500_000, "CHF", True, "1.50 CHF"),
    ],
)
def test_money_is_shown_with_its_currency(micro: int, currency: str, exact: bool, shown: str) -> None:
    assert format_money(micro, currency, exact=exact) == shown


def test_numbers_group_thousands_when_asked() -> None:
    assert format_number(1_234_567_890_000, 2, grouping=True) == "1,234,567.89"
    assert format_number(999_999, 2, exact=False) == "1.00"
