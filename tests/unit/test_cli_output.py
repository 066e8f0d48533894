"""What people see: tables that fit their width, money aligned on the decimal point, readable times."""

from __future__ import annotations

from gatewayctl.humanize import duration, money_column, relative, scope_lines
from gatewayctl.table import Column, layout

COLUMNS = [
    Column("id", "ID"),
    Column("model", "MODEL"),
    Column("cost", "COST", align="right"),
    Column("targets", "TARGETS", elide=True),
    Column("notes", "NOTES", elide=True),
]


def _rows() -> list[list[str]]:
    return [
        ["key_0123456789abcdef", "gpt-4o-mini-2024-07-18", "$0.000110", "openai:gpt-4o-mini, backup:x" * 2, "n" * 40],
        ["key_fedcba9876543210", "claude-sonnet-4", "$12.50   ", "anthropic:claude-sonnet-4", "short"],
    ]


def test_a_wide_table_fits_by_eliding_the_right_columns_never_ids_or_models() -> None:
    lines = layout(COLUMNS, _rows(), 80)
    assert all(len(line) <= 80 for line in lines), lines
    assert "key_0123456789abcdef" in lines[1] and "gpt-4o-mini-2024-07-18" in lines[1]
    assert "…" in lines[1] and "$0.000110" in lines[1]


def test_a_narrow_table_is_left_alone() -> None:
    lines = layout(COLUMNS[:3], [row[:3] for row in _rows()], 80)
    assert lines[0].split() == ["ID", "MODEL", "COST"] and "…" not in "".join(lines)


def test_money_lines_up_on_the_decimal_point() -> None:
    column = money_column([110, 12_500_000, -3_000_000, None, 1_234_567_890_000], "USD")
    assert column[3] == ""
    points = {text.index(".") for text in column if text}
    assert len(points) == 1 and len({len(text) for text in column if text}) == 1
    assert column[4].strip() == "$1,234,567.89"
    codes = money_column([1_500_000, 110], "CHF")
    assert {text.index(".") for text in codes} == {1} and all(text.endswith(" CHF") for text in codes)


def test_times_and_durations_read_like_speech() -> None:
    now = 1_800_000_000_000
    assert relative(now - 3_000, now) == "just now"
    assert relative(now - 180_000, now) == "3 min ago"
    assert relative(now + 7_200_000, now) == "in 2 h"
    assert relative(now - 3 * 86_400_000, now)[:2] == "20"  # a local date beyond a day
    assert duration(3725) == "1 h 2 min" and duration(7205) == "2 h" and duration(45) == "45 s"


def test_scopes_are_lines_not_a_dict() -> None:
    lines = scope_lines({"models": ["gpt-4o*"], "rpm": 60, "monthly_budget_micro": 5_000_000}, "USD")
    assert lines == ["models: gpt-4o*", "requests per minute: 60", "monthly budget: $5.00"]
    assert scope_lines({}, "USD") == ["none (any model, endpoint and address)"]
