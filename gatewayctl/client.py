"""The admin API client: one HTTP request per call; failures become one-line CliErrors.

The standard library's http.client, not httpx: a command's start-up time is mostly imports, and
httpx (with its optional CLI extras) costs ~90 ms to import for what is a handful of JSON requests
to one server. One keep-alive connection per client. The server names its currency in
`x-gateway-currency` on every admin answer; `currency` keeps the last one seen.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from gatewayctl.errors import CliError

CURRENCY_HEADER = "x-gateway-currency"


class AdminClient:
    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        self.url = url
        self._token = token
        self._timeout = timeout
        self._conn: Any = None
        self.currency = "USD"
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CliError(f"not a gateway URL: {url!r} (expected http://host:port)", 2)
        self._parts = parts

    def _connection(self) -> Any:
        if self._conn is None:
            import http.client

            kind = http.client.HTTPSConnection if self._parts.scheme == "https" else http.client.HTTPConnection
            self._conn = kind(self._parts.hostname, self._parts.port, timeout=self._timeout)
        return self._conn

    def _send(self, method: str, path: str, json_body: Any, params: dict[str, Any] | None) -> Any:
        """Send one request; the response with its headers read (its body not yet)."""
        target = quote(f"{self._parts.path.rstrip('/')}/admin/v1{path}", safe="/@:")
        if params:
            target += "?" + urlencode({k: v for k, v in params.items() if v is not None})
        headers = {"authorization": f"Bearer {self._token}", "accept": "application/json"}
        payload = None
        if json_body is not None:
            payload = json.dumps(json_body).encode()
            headers["content-type"] = "application/json"
        try:
            conn = self._connection()
            conn.request(method, target, body=payload, headers=headers)
            response = conn.getresponse()
        except (OSError, ValueError) as exc:  # refused, reset, timeout, TLS, a broken answer
            self.close()
            raise CliError(_unreachable(self.url, exc), code="unreachable") from None
        self.currency = response.getheader(CURRENCY_HEADER) or self.currency
        return response

    def request(self, method: str, path: str, *, json_body: Any = None, params: dict[str, Any] | None = None) -> Any:
        response = self._send(method, path, json_body, params)
        try:
            raw = response.read()
        except (OSError, ValueError) as exc:
            self.close()
            raise CliError(_unreachable(self.url, exc), code="unreachable") from None
        if response.status >= 400:
            raise _refusal(response.status, raw)
        try:
            return json.loads(raw)
        except ValueError:
            raise CliError(f"the gateway at {self.url} answered {response.status} with something not JSON") from None

    def download(
        self, path: str, write: Callable[[bytes], Any], params: dict[str, Any] | None = None
    ) -> dict[str, str]:
        """POST `path` and hand the answer's body to `write` piece by piece; returns its headers (lower-case)."""
        response = self._send("POST", path, {}, params)
        try:
            if response.status >= 400:
                raise _refusal(response.status, response.read())
            while piece := response.read(1 << 20):
                write(piece)
        except (OSError, ValueError) as exc:
            self.close()
            raise CliError(_unreachable(self.url, exc), code="unreachable") from None
        return {name.lower(): value for name, value in response.getheaders()}

    def events(self, path: str, params: dict[str, Any] | None = None) -> Iterator[tuple[str, Any]]:
        """GET a server-sent event stream: (event name, parsed data) as they arrive, until the server ends
        it. A refusal (4xx, 5xx) raises at once; a lost connection raises CliError(code="unreachable")."""
        response = self._send("GET", path, None, params)
        if response.status >= 400:
            raise _refusal(response.status, response.read())
        name, data = "message", []
        try:
            while line := response.readline():
                text = line.decode("utf-8", errors="replace").rstrip("\r\n")
                if text.startswith("event:"):
                    name = text[6:].strip()
                elif text.startswith("data:"):
                    data.append(text[5:].strip())
                elif not text and data:
                    yield name, json.loads("\n".join(data))
                    name, data = "message", []
        except (OSError, ValueError) as exc:
            raise CliError(_unreachable(self.url, exc), code="unreachable") from None
        finally:
            self.close()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, json_body=body or {})

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("PATCH", path, json_body=body)

    def put(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("PUT", path, json_body=body)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _unreachable(url: str, exc: Exception) -> str:
    kind = type(exc).__name__
    hint = " (is `gatewayctl serve` running there?)" if isinstance(exc, ConnectionRefusedError) else ""
    detail = getattr(exc, "strerror", None) or str(exc) or kind
    return f"cannot reach the gateway at {url}: {detail}{hint}"


def _refusal(status: int, raw: bytes) -> CliError:
    try:
        error = json.loads(raw)["error"]
        line = f"{status} {error.get('code') or error.get('type')}: {error['message']}"
        return CliError(line, code=error.get("code"), status=status, error=error)
    except (ValueError, KeyError, TypeError):
        return CliError(f"{status}: {raw[:200].decode(errors='replace')}", status=status)
