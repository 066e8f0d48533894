"""Log lines for journald: one line per event, the request id on each line logged inside a request."""

from __future__ import annotations

import logging

from server.logline import OneLine
from server.request_facts import REQUEST_ID


def _record(message: str, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError("first\nsecond")
        except ValueError:
            import sys

            info = sys.exc_info()
    return logging.LogRecord("gateway.relay", logging.ERROR, __file__, 1, message, (), info)


def test_a_traceback_is_folded_into_one_line_with_the_request_id() -> None:
    token = REQUEST_ID.set("0b5e0c7e-6a8f-4f34-9c1f-3a1d2b4c5d6e")
    try:
        line = OneLine("%(levelname)s %(name)s: %(message)s").format(_record("stream failed", exc=True))
    finally:
        REQUEST_ID.reset(token)
    assert "\n" not in line and "Traceback" in line and "ValueError: first | second" in line
    assert line.endswith("request=0b5e0c7e-6a8f-4f34-9c1f-3a1d2b4c5d6e")


def test_a_line_outside_a_request_or_naming_it_already_is_left_alone() -> None:
    formatter = OneLine("%(message)s")
    assert formatter.format(_record("config reloaded")) == "config reloaded"
    token = REQUEST_ID.set("abc")
    try:
        assert formatter.format(_record("request=abc method=GET")) == "request=abc method=GET"
    finally:
        REQUEST_ID.reset(token)
