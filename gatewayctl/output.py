"""Output for every command: a rich table for people, or JSON with --json for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(soft_wrap=True)  # one line stays one line in logs and pipes


def emit_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str | None = None) -> None:
    grid = Table(title=title)
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    console.print(grid)


def fields(data: dict[str, Any]) -> None:
    for name, value in data.items():
        console.print(f"[bold]{name}[/bold]: {value}")
