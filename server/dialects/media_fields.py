"""Checks the media dialects share: the fields they read themselves are validated here, so a bad value is
a 400 naming the field before anything is reserved or sent. Fields they do not read pass through."""

from __future__ import annotations

import math
from typing import Any

from server.errors import INVALID_TYPE, INVALID_VALUE, MISSING_FIELD, TOO_LONG


def text(body: dict[str, Any], name: str, *, limit: int, required: bool = True) -> str:
    value = body.get(name)
    if value is None:
        if required:
            raise MISSING_FIELD(field=name)
        return ""
    if not isinstance(value, str) or (required and not value):
        raise INVALID_TYPE(field=name, what="a non-empty string" if required else "a string")
    if len(value) > limit:
        raise TOO_LONG(field=name, limit=limit)
    return value


def choice(body: dict[str, Any], name: str, allowed: tuple[str, ...], default: str | None) -> str | None:
    value = body.get(name)
    if value is None:
        return default
    if value not in allowed:
        raise INVALID_VALUE(field=name, what="one of " + ", ".join(allowed))
    return str(value)


def whole(body: dict[str, Any], name: str, low: int, high: int, default: int | None) -> int | None:
    """An integer (or a string of digits, as multipart forms and OpenAI's `seconds` send it) in [low, high]."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise INVALID_VALUE(field=name, what=f"an integer from {low} to {high}")
    return value


def fraction(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise INVALID_TYPE(field=name, what="a number")
    if not low <= value <= high:
        raise INVALID_VALUE(field=name, what=f"a number from {low:g} to {high:g}")
    return float(value)


def size(body: dict[str, Any], name: str = "size") -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not (value == "auto" or _dimensions(value)):
        raise INVALID_VALUE(field=name, what="a size such as 1024x1024 (or auto)")
    return value


def _dimensions(value: str) -> bool:
    width, sep, height = value.partition("x")
    return bool(sep) and width.isdigit() and height.isdigit() and 0 < int(width) <= 8192 and 0 < int(height) <= 8192
