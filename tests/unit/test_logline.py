"""Log lines for journald: one line per event, the request id on each line logged inside a request, as
text or as one JSON object per line; secrets scrubbed in both."""

from __future__ import annotations

import io
import json
import logging

import pytest

from server.logline import JsonLine, OneLine, log_handler
from server.request_facts import REQUEST_ID

REQUEST = "0b5e0c7e-6a8f-4f34-9c1f-3a1d2b4c5d6e"


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


def test_a_json_line_is_one_object_with_the_request_id_and_the_traceback_folded_into_one_field() -> None:
    token = REQUEST_ID.set(REQUEST)
    try:
        line = JsonLine().format(_record("stream failed", exc=True))
    finally:
        REQUEST_ID.reset(token)
    assert "\n" not in line
    entry = json.loads(line)
    assert set(entry) == {"ts", "level", "logger", "message", "request_id", "exc"}
    assert entry["level"] == "ERROR" and entry["logger"] == "gateway.relay" and entry["message"] == "stream failed"
    assert entry["request_id"] == REQUEST
    assert entry["exc"].startswith("Traceback") and entry["exc"].endswith("ValueError: first\nsecond")
    assert entry["ts"].endswith("Z") and entry["ts"][10] == "T"


def test_a_json_line_outside_a_request_has_no_request_id_unless_given_one() -> None:
    assert "request_id" not in json.loads(JsonLine().format(_record("config reloaded")))
    record = _record("request=abc method=GET")
    record.request_id = "abc"  # the access log names its request after the request's context ended
    assert json.loads(JsonLine().format(record))["request_id"] == "abc"


@pytest.mark.parametrize("kind", ["text", "json"])
def test_secrets_never_reach_a_log_line_in_either_format(kind: str) -> None:
    out = io.StringIO()
    logger = logging.getLogger(f"gateway.test-secrets-{kind}")
    logger.propagate = False
    logger.addHandler(log_handler(kind, out))  # type: ignore[arg-type]
    key, admin, upstream = "gw_live_" + "k" * 43, "gwa_" + "a" * 43, "sk-proj-" + "u" * 40
    try:
        logger.warning("caller sent %s and %s", key, admin)
        try:
            raise RuntimeError(f"upstream said: bad key {upstream}")
        except RuntimeError:
            logger.exception("upstream call failed")
    finally:
        logger.handlers.clear()
    written = out.getvalue()
    assert len(written.splitlines()) == 2
    assert key not in written and admin not in written and upstream not in written
    assert written.count("[redacted]") == 3
    if kind == "json":
        assert [json.loads(line)["level"] for line in written.splitlines()] == ["WARNING", "ERROR"]
