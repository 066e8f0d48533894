"""Log lines for journald and log shippers: one line per event, with the request id when it happened inside
a request, as text or as JSON (`[logging] format`).

A traceback or a multi-line message would become several journal entries, each without the others'
context: in text, newlines are folded into ` | `; in JSON, each event is one object on one line and the
traceback is one field (`exc`). The request id comes from the context variable the request-id layer sets
(server/request_facts.py), so a line logged anywhere below a request carries it. `log_handler` adds the
secret filter (server/redact.py), so a key-shaped string is scrubbed from the message and the traceback
before either format sees it.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Literal, TextIO

import orjson

from server.redact import SecretFilter
from server.request_facts import REQUEST_ID

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = REQUEST_ID.get()
        if request_id and "request=" not in text:
            text += f" request={request_id}"
        return text.replace("\r\n", " | ").replace("\n", " | ")


class JsonLine(logging.Formatter):
    """One JSON object per event: `ts` (UTC, ISO 8601 with milliseconds), `level`, `logger`, `message`, and
    `request_id` inside a request (or given as `extra`, as the access log does once its request ended), `exc`
    (the whole traceback, one string) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()  # `extra` once the request ended
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry).decode()


def lean_records() -> None:
    """Stop filling the log record fields no line here shows: the caller's file and line (found by walking
    the stack on every line, the costliest part of an access-log line), thread and process names. The
    logging HOWTO's "Optimization" section names these switches."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def log_handler(kind: Literal["text", "json"], stream: TextIO | None = None) -> logging.Handler:
    """A handler writing one line per event in `kind` to `stream` (stderr), secrets scrubbed first."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLine() if kind == "json" else OneLine(TEXT_FORMAT))
    handler.addFilter(SecretFilter())
    return handler
