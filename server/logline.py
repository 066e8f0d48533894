"""Log lines for journald: one line per event, with the request id when it happened inside a request.

A traceback or a multi-line message would become several journal entries, each without the others'
context; here newlines are folded into ` | `. The request id comes from the context variable the
request-id layer sets (server/request_facts.py), so a line logged anywhere below a request carries it.
(The text/JSON choice of the operator-loop work plugs in here.)
"""

from __future__ import annotations

import logging

from server.request_facts import REQUEST_ID


class OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = REQUEST_ID.get()
        if request_id and "request=" not in text:
            text += f" request={request_id}"
        return text.replace("\r\n", " | ").replace("\n", " | ")
