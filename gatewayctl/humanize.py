"""Values as people read them: local times and "3 min ago", durations, money with its currency,
key scopes as lines. Pure functions of their inputs (and the local time zone); --json never uses them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from server.money import format_money

_UNITS = ((86400, "d"), (3600, "h"), (60, "min"), (1, "s"))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def local_time(ms: int | None, *, seconds: bool = False) -> str:
    """Epoch milliseconds as local ISO date and time, e.g. 2026-11-30 14:03 (empty for None)."""
    if ms is None:
        return ""
    moment = datetime.fromtimestamp(ms / 1000).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S %z" if seconds else "%Y-%m-%d %H:%M")


def duration(seconds: float, units: int = 2) -> str:
    """A span in its largest units (two by default): 45 s, 3 min, 2 h 5 min, 29 d 4 h."""
    left = int(abs(seconds))
    if left < 1:
        return "0 s"
    parts: list[str] = []
    for size, unit in _UNITS:
        if left >= size:
            count, left = divmod(left, size)
            parts.append(f"{count} {unit}")
            if len(parts) == units:
                break
        elif parts:  # never skip a unit: 2 h 5 s reads as a typo, say 2 h
            break
    return " ".join(parts)


def _span(delta: float, units: int = 2) -> str:
    if abs(delta) < 10:
        return "just now"
    return f"in {duration(delta, units)}" if delta > 0 else f"{duration(delta, units)} ago"


def relative(ms: int | None, now: int | None = None) -> str:
    """'3 min ago' or 'in 2 h' within a day, else the local date and time."""
    if ms is None:
        return ""
    delta = (ms - (now_ms() if now is None else now)) / 1000
    return local_time(ms) if abs(delta) >= 86400 else _span(delta, units=1)


def moment(ms: int | None, now: int | None = None) -> str:
    """For one-record views: the local time with seconds and zone, and how long ago (or until)."""
    if ms is None:
        return "never"
    delta = (ms - (now_ms() if now is None else now)) / 1000
    return f"{local_time(ms, seconds=True)} ({_span(delta)})"


def money(micro: int | None, currency: str) -> str:
    return "" if micro is None else format_money(micro, currency, grouping=True)


def money_column(amounts: Sequence[int | None], currency: str) -> list[str]:
    """Amounts as strings aligned on the decimal point (pad the integer part left, the fraction right)."""
    texts = [money(a, currency) for a in amounts]
    splits = []
    for text in texts:
        digits_end = len(text.rstrip(" ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
        number, suffix = text[:digits_end], text[digits_end:]
        head, dot, tail = number.partition(".")
        splits.append((head, dot + tail, suffix))
    head_width = max((len(h) for h, _, _ in splits), default=0)
    tail_width = max((len(t) for _, t, _ in splits), default=0)
    return [
        "" if text == "" else f"{head.rjust(head_width)}{tail.ljust(tail_width)}{suffix}"
        for text, (head, tail, suffix) in zip(texts, splits, strict=True)
    ]


def scope_lines(scopes: dict[str, Any], currency: str) -> list[str]:
    """A key's scopes as readable lines; no line means no restriction of that kind."""
    lines = []
    if scopes.get("models"):
        lines.append("models: " + ", ".join(scopes["models"]))
    if scopes.get("endpoints"):
        lines.append("endpoints: " + ", ".join(scopes["endpoints"]))
    if scopes.get("ips"):
        lines.append("client IPs: " + ", ".join(scopes["ips"]))
    if scopes.get("rpm"):
        lines.append(f"requests per minute: {scopes['rpm']:,}")
    if scopes.get("tpm"):
        lines.append(f"tokens per minute: {scopes['tpm']:,}")
    if scopes.get("monthly_budget_micro"):
        lines.append(f"monthly budget: {money(scopes['monthly_budget_micro'], currency)}")
    return lines or ["none (any model, endpoint and address)"]


def count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"
