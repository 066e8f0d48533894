"""Raw HTTP calls to the gateway, each answer checked against the schema OpenAI's document gives its route.

No SDK in between: an SDK tolerates (or fills in) what a strict client would reject. A route's schema
is found from the concrete path (`/models/via-mock` matches the document's `/models/{model}`), so a
new route is covered by one call such as `api.json("POST", "/images/generations", body)`.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import httpx

from tests.conformance.schema import OpenAPI
from tests.conformance.sse import DONE, SseEvent, parse

EVENT_STREAM = "text/event-stream"


@dataclass(frozen=True)
class Stream:
    """A streamed answer: its events as sent, their JSON payloads (`[DONE]` left out), and whether it ended so."""

    events: list[SseEvent]
    payloads: list[Any]
    done: bool


class ConformanceClient:
    """Calls `<base_url>/v1<path>` with a gateway key and checks what comes back."""

    def __init__(self, base_url: str, key: str, spec: OpenAPI) -> None:
        self.spec = spec
        self.http = httpx.Client(base_url=f"{base_url}/v1", headers={"authorization": f"Bearer {key}"}, timeout=30)
        self._templates = sorted(spec.document["paths"], key=lambda template: template.count("{"))

    def close(self) -> None:
        self.http.close()

    def spec_path(self, path: str) -> str:
        """The document's path template for a concrete path (the most literal one when several match)."""
        for template in self._templates:
            if re.fullmatch(re.sub(r"\\{[^/]+\\}", "[^/]+", re.escape(template)), path):
                return template
        raise AssertionError(f"the OpenAPI document describes no path matching {path}")

    def json(self, method: str, path: str, body: Any = None, *, excused: Collection[str] = (), **kwargs: Any) -> Any:
        """A 200 JSON answer, checked against the route's `application/json` schema (`kwargs` go to httpx,
        e.g. `files=` for a multipart upload; `excused`: see `_judge`)."""
        response = self.http.request(method, path, json=body, **kwargs)
        assert response.status_code == 200, f"{method} {path}: {response.status_code} {response.text[:500]}"
        payload = response.json()
        self._judge(self.spec.route_schema(method, self.spec_path(path)), [payload], excused)
        return payload

    def error(self, method: str, path: str, status: int, body: Any = None, **kwargs: Any) -> Any:
        """An error answer with `status`, checked against `ErrorResponse` (`kwargs` go to httpx, e.g. `headers`)."""
        response = self.http.request(method, path, json=body, **kwargs)
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text[:500]}"
        payload = response.json()
        self.spec.check("ErrorResponse", payload)
        return payload

    def events(self, path: str, body: Any) -> Stream:
        """A streamed POST as sent, unchecked (for streams that end in an error)."""
        response = self.http.post(path, json=body)
        assert response.status_code == 200, f"POST {path}: {response.status_code} {response.text[:500]}"
        assert response.headers["content-type"].startswith(EVENT_STREAM), response.headers["content-type"]
        events = parse(response.text)
        done = bool(events) and events[-1].data == DONE
        payloads = [event.json() for event in (events[:-1] if done else events)]
        return Stream(events, payloads, done)

    def stream(self, path: str, body: Any, *, excused: Collection[str] = ()) -> Stream:
        """A streamed POST with every event checked, one by one, against the route's `text/event-stream` schema."""
        stream = self.events(path, body)
        self._judge(self.spec.route_schema("POST", self.spec_path(path), EVENT_STREAM), stream.payloads, excused)
        return stream

    def _judge(self, name: str, payloads: list[Any], excused: Collection[str]) -> None:
        """Every payload must conform to schema `name`, except for problems ending with an `excused` text
        (a known fault of a stand-in upstream, reported where it lives); each excuse must still occur,
        so it goes away when its cause does."""
        unused = set(excused)
        for index, payload in enumerate(payloads):
            problems = []
            for problem in self.spec.problems(name, payload):
                reasons = {excuse for excuse in excused if problem.endswith(excuse)}
                unused -= reasons
                problems += [] if reasons else [problem]
            where = f"{name}" if len(payloads) == 1 else f"{name}, event {index} ({payload.get('type', '')})"
            assert not problems, f"{where} violated:\n  " + "\n  ".join(problems)
        assert not unused, f"excused problems that no longer occur (drop the excuse): {sorted(unused)}"
