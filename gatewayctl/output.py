"""Where output goes: results on stdout (a table or fields for people, JSON with --json), notes and
errors on stderr. Tables fit the terminal (80 columns when stdout is not one, or $COLUMNS), plain
text without box drawing; bold and dim only on a terminal and never with NO_COLOR (no-color.org)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from gatewayctl.table import Column, layout

BOLD, DIM, RESET = "\x1b[1m", "\x1b[2m", "\x1b[0m"


def use_color(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return stream.isatty()


def width() -> int:
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    return shutil.get_terminal_size((80, 24)).columns if sys.stdout.isatty() else 80


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def note(text: str) -> None:
    """A line for the person at the terminal (advice, progress): stderr, so stdout stays parseable."""
    styled = f"{DIM}{text}{RESET}" if use_color(sys.stderr) else text
    sys.stderr.write(styled + "\n")


def table(columns: Sequence[Column], rows: Sequence[Mapping[str, str]], empty: str = "(none)") -> None:
    if not rows:
        note(empty)
        return
    cells = [[str(row.get(c.key, "") or "") for c in columns] for row in rows]
    style = (BOLD, RESET) if use_color(sys.stdout) else ("", "")
    for line in layout(columns, cells, width(), style):
        say(line)


def fields(pairs: Sequence[tuple[str, str | Sequence[str]]]) -> None:
    """`label: value` lines; a list value goes one item per indented line."""
    label_width = max((len(label) for label, _ in pairs), default=0) + 1
    bold = use_color(sys.stdout)
    for label, value in pairs:
        shown = f"{BOLD}{label}:{RESET}" if bold else f"{label}:"
        pad = " " * (label_width - len(label) - 1)
        if isinstance(value, str):
            say(f"{shown}{pad} {value}".rstrip())
            continue
        items = list(value)
        say(f"{shown}{pad} {items[0] if items else ''}".rstrip())
        for item in items[1:]:
            say(f"{' ' * label_width} {item}")
