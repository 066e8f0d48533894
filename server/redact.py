"""Secrets never leave the gateway: provider keys, our API keys and admin tokens, and anything key-shaped
are scrubbed from text before it reaches a client, a log line or a stored body.

`scrub` replaces the exact secrets it is given (a provider's own key) and every key-shaped token:
OpenAI-style `sk-…`, Anthropic `sk-ant-…`, Google `AIza…`, our `gw_live_…` keys and `gwa_…` admin tokens,
Stripe `sk_live_/rk_live_…` and `whsec_…` secrets, and whatever follows `Bearer `.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

REDACTED = "[redacted]"
_KEY_SHAPES = re.compile(
    r"(?:sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{8,}"
    r"|gw_live_[A-Za-z0-9_\-]{8,}"
    r"|gwa_[A-Za-z0-9_\-]{8,}"
    r"|AIza[0-9A-Za-z_\-]{20,}"
    r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{8,}"
    r"|whsec_[A-Za-z0-9+/=]{8,}"
    r"|(?<=Bearer )[A-Za-z0-9._\-~+/]{8,}=*)"
)


_KEY_SHAPES_BYTES = re.compile(_KEY_SHAPES.pattern.encode())
# Every key shape starts with one of these: a body with none of them is returned as it is, unscanned.
_MARKERS = (b"sk-", b"gw_live_", b"gwa_", b"AIza", b"sk_", b"rk_", b"whsec_", b"Bearer ")


def scrub_bytes(data: bytes) -> bytes:
    """`data` (UTF-8, e.g. a JSON body) with every key-shaped token replaced by [redacted]. The common
    case, no marker at all, costs a few substring searches and no regex scan."""
    if not any(marker in data for marker in _MARKERS):
        return data
    return _KEY_SHAPES_BYTES.sub(REDACTED.encode(), data)


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with the given secrets and every key-shaped token replaced by [redacted]."""
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, REDACTED)
    return _KEY_SHAPES.sub(REDACTED, text)


class SecretFilter(logging.Filter):
    """A logging filter that scrubs every record's message (and its arguments) before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def install_log_filter() -> None:
    """Scrub every handler of the root logger (call once the logging configuration is in place)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, SecretFilter) for f in handler.filters):
            handler.addFilter(SecretFilter())
