"""One webhook attempt over HTTP: POST the signed body to an address that passed the SSRF check.

The connection goes to the checked address itself (the URL names the IP), while the Host header and the
TLS server name (SNI, and the certificate's check) stay the endpoint's host name: no second DNS lookup
can send the bytes elsewhere. Redirects are never followed (a 3xx is a failed attempt), proxies from the
environment are ignored, the answer is read only up to its first KiB (undecoded, so a compressed answer
cannot inflate), and a fresh connection is used per attempt (a pooled one could carry another name's SNI).

Failure is never raised: `Answer` carries the status code, or an `error` sentence (timeout, refused
connection, TLS) for the attempt record.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

import httpx

from server.clock import now_ms
from server.webhooks.addresses import Destination

EXCERPT_BYTES = 1024


@dataclass(slots=True, frozen=True)
class Answer:
    """How one attempt went: the status code and the answer's first KiB, or what went wrong."""

    started_ms: int
    latency_ms: int
    status_code: int | None = None
    body: str | None = None
    error: str | None = None
    retry_after_s: float | None = None  # what a 429 or 503 asked us to wait

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def failed(started_ms: int, started: float, error: str) -> Answer:
    return Answer(started_ms, int((time.monotonic() - started) * 1000), error=error)


class Sender:
    def __init__(self, timeout_s: float, transport: Callable[[], httpx.AsyncBaseTransport] | None = None) -> None:
        self.timeout_s = timeout_s
        self._tls: ssl.SSLContext | None = None
        self._transport = transport  # tests swap the network out; by default a fresh connection per attempt

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:  # built once: loading the CA bundle costs milliseconds
            self._tls = ssl.create_default_context()
        return self._tls

    async def post(
        self, destination: Destination, headers: dict[str, str], body: bytes, started_ms: int, started: float
    ) -> Answer:
        """Send to each checked address in turn until one accepts the connection; answer what came back."""
        if self._transport is not None:
            transport = self._transport()
        else:
            transport = httpx.AsyncHTTPTransport(verify=self._tls_context(), retries=0)
        extensions = {"sni_hostname": destination.host} if destination.scheme == "https" else {}
        sent = {**headers, "host": destination.host_header}
        last_error = "no address to connect to"
        async with httpx.AsyncClient(
            transport=transport, trust_env=False, follow_redirects=False, timeout=self.timeout_s
        ) as client:
            for address in destination.addresses:
                try:
                    request = client.build_request(
                        "POST", destination.url_for(address), content=body, headers=sent, extensions=extensions
                    )
                    response = await client.send(request, stream=True)
                except httpx.ConnectError as exc:
                    last_error = f"cannot connect to {address} port {destination.port}: {_reason(exc)}"
                    continue
                except httpx.TimeoutException:
                    return failed(started_ms, started, f"timed out after {self.timeout_s:g} s")
                except httpx.HTTPError as exc:
                    return failed(started_ms, started, f"{type(exc).__name__}: {_reason(exc)}")
                try:
                    excerpt = await _first_bytes(response)
                except httpx.HTTPError as exc:
                    excerpt = f"(answer unreadable: {_reason(exc)})"
                finally:
                    await response.aclose()
                code = response.status_code
                wait = retry_after_s(code, response.headers.get("retry-after"), time.time())
                latency = int((time.monotonic() - started) * 1000)
                return Answer(started_ms, latency, code, excerpt, None, wait)
        return failed(started_ms, started, last_error)


def retry_after_s(status: int | None, header: str | None, now_s: float) -> float | None:
    """Seconds a 429 or 503 asks us to wait (delta-seconds or an HTTP date); None if absent or malformed."""
    if status not in (429, 503) or not header:
        return None
    text = header.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now_s)


async def _first_bytes(response: httpx.Response) -> str:
    data = b""
    async for chunk in response.aiter_raw():
        data += chunk
        if len(data) >= EXCERPT_BYTES:
            break
    return data[:EXCERPT_BYTES].decode("utf-8", errors="replace")


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def start_clock() -> tuple[int, float]:
    """(wall-clock ms for the record, monotonic seconds for the latency) at an attempt's start."""
    return now_ms(), time.monotonic()
