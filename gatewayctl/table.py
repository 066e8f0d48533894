"""Lay out a table of strings in a given width: pure text, no terminal library.

Columns marked `elide` shrink first, right-most first, and show a trailing '…'; identifying columns
(ids, names, models) keep their width. Numbers are right-aligned; money cells arrive pre-aligned
on their decimal point (humanize.money_column) and are right-aligned as a block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

GAP = "  "
MIN_ELIDED = 8
MIN_LAST = 20


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    align: str = "left"  # left | right
    elide: bool = False  # may be shortened to fit the width


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def fit_widths(natural: list[int], columns: Sequence[Column], width: int) -> list[int]:
    """Shrink elidable columns (right-most first) until the row fits `width`, never below MIN_ELIDED;
    if that is not enough (an absurdly long name), the widest text column shrinks too, to MIN_LAST."""
    widths = list(natural)
    excess = sum(widths) + len(GAP) * (len(widths) - 1) - width
    for index in reversed(range(len(columns))):
        if excess <= 0:
            break
        if not columns[index].elide:
            continue
        floor = min(widths[index], max(MIN_ELIDED, len(columns[index].header)))
        cut = min(excess, widths[index] - floor)
        widths[index] -= cut
        excess -= cut
    text = [i for i, c in enumerate(columns) if c.align == "left" and not c.elide]
    if excess > 0 and text:
        widest = max(text, key=lambda i: widths[i])
        cut = min(excess, max(0, widths[widest] - MIN_LAST))
        widths[widest] -= cut
    return widths


def layout(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int, header_style: tuple[str, str] = ("", "")
) -> list[str]:
    """The header line and one line per row, each at most `width` wide when elision allows it."""
    natural = [max([len(c.header), *(len(row[i]) for row in rows)]) for i, c in enumerate(columns)]
    widths = fit_widths(natural, columns, width)

    def line(cells: Sequence[str]) -> str:
        parts = []
        for column, cell, size in zip(columns, cells, widths, strict=True):
            text = _shorten(cell, size)
            parts.append(text.rjust(size) if column.align == "right" else text.ljust(size))
        return GAP.join(parts).rstrip()

    start, end = header_style
    head = line([c.header for c in columns])
    return [f"{start}{head}{end}", *(line(row) for row in rows)]
