"""`--since` values: a relative span (30m, 24h, 7d) or an ISO date/time (UTC unless it says)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from gatewayctl.errors import CliError

_SPAN = re.compile(r"^(\d+)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def span_seconds(text: str, option: str) -> int:
    match = _SPAN.match(text.strip())
    if not match:
        raise CliError(f"{option}: expected e.g. 30m, 1h or 7d, got {text!r}", 2)
    return int(match.group(1)) * _SECONDS[match.group(2)]


def _moment_ms(text: str, now: float, sign: int, option: str) -> int:
    match = _SPAN.match(text.strip())
    if match:
        return int((now + sign * int(match.group(1)) * _SECONDS[match.group(2)]) * 1000)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(f"{option}: expected e.g. 24h, 7d or 2026-11-01, got {text!r}", 2) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def since_ms(text: str, now: float | None = None) -> int:
    """A span back from now (24h) or a moment."""
    return _moment_ms(text, time.time() if now is None else now, -1, "--since")


def until_ms(text: str, now: float | None = None) -> int:
    """A span ahead of now (30d) or a moment (2026-12-31)."""
    return _moment_ms(text, time.time() if now is None else now, 1, "--expires")
