"""Remote media URLs the gateway fetches itself (an image URL a provider needs as bytes, an image a
provider answered with its own URL): the webhooks' SSRF rules, applied to every hop.

Each URL is parsed and its host resolved; every address must be public (server/webhooks/addresses.py:
private, loopback, link-local, CGNAT, metadata and reserved ranges refused, IPv4-in-IPv6 judged as IPv4)
unless inside `[files] fetch_allow_networks`, and https unless `fetch_allow_http`. The connection goes to
the checked address (no second lookup: DNS rebinding cannot redirect it), with the URL's host as Host and
TLS server name. Redirects are followed by hand, at most 3, each checked the same way. The answer must be
2xx, at most `fetch_max_mb`, all within `fetch_timeout_s`; it is read as it arrives and refused the moment
it passes the cap.

Failure: `FetchRefused`, whose message says which URL and why (a client's 400 `url_not_fetched`).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

from server.settings import FileSettings
from server.webhooks.addresses import Destination, Refused, Resolver, check, networks, system_resolver

MAX_REDIRECTS = 3


class FetchRefused(Exception):
    """A URL the gateway will not fetch, or could not; the message says which and why."""


@dataclass(slots=True, frozen=True)
class Fetched:
    data: bytes
    content_type: str


class Fetcher:
    def __init__(
        self,
        settings: FileSettings,
        resolver: Resolver = system_resolver,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._allow = networks(settings.fetch_allow_networks)
        self._allow_http = settings.fetch_allow_http
        self._cap = settings.fetch_max_mb << 20
        self._timeout = settings.fetch_timeout_s
        self._resolver = resolver
        self._transport = transport
        self._tls: ssl.SSLContext | None = None

    async def fetch(self, url: str) -> Fetched:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._follow(url)
        except TimeoutError:
            raise FetchRefused(f"{_short(url)} did not answer within {self._timeout:g} s") from None

    async def _follow(self, url: str) -> Fetched:
        for _ in range(MAX_REDIRECTS + 1):
            try:
                destination = await check(
                    url,
                    allow_http=self._allow_http,
                    allow=self._allow,
                    resolver=self._resolver,
                    timeout_s=self._timeout,
                )
            except Refused as exc:
                raise FetchRefused(f"URL refused: {exc}") from None
            transport = self._transport or httpx.AsyncHTTPTransport(verify=self._tls_context(), retries=0)
            extensions = {"sni_hostname": destination.host} if destination.scheme == "https" else {}
            async with httpx.AsyncClient(transport=transport, trust_env=False, follow_redirects=False) as client:
                response = await self._connect(client, destination, extensions)
                try:
                    if response.status_code in (301, 302, 303, 307, 308) and response.headers.get("location"):
                        url = urljoin(url, response.headers["location"])
                        continue
                    if not 200 <= response.status_code < 300:
                        raise FetchRefused(f"{_short(url)} answered {response.status_code}")
                    return Fetched(await self._read(response, url), response.headers.get("content-type", ""))
                finally:
                    await response.aclose()
        raise FetchRefused(f"{_short(url)} redirected more than {MAX_REDIRECTS} times")

    async def _connect(
        self, client: httpx.AsyncClient, destination: Destination, extensions: dict[str, str]
    ) -> httpx.Response:
        last = "no address to connect to"
        for address in destination.addresses:
            request = client.build_request(
                "GET", destination.url_for(address), headers={"host": destination.host_header}, extensions=extensions
            )
            try:
                return await client.send(request, stream=True)
            except httpx.ConnectError as exc:
                last = f"cannot connect to {address}: {exc or type(exc).__name__}"
            except httpx.HTTPError as exc:
                raise FetchRefused(f"{_short(destination.url)}: {type(exc).__name__}") from None
        raise FetchRefused(f"{_short(destination.url)}: {last}")

    async def _read(self, response: httpx.Response, url: str) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._cap:
            raise FetchRefused(f"{_short(url)} is larger than {self._cap >> 20} MiB")
        pieces, size = [], 0
        async for piece in response.aiter_bytes():
            size += len(piece)
            if size > self._cap:
                raise FetchRefused(f"{_short(url)} is larger than {self._cap >> 20} MiB")
            pieces.append(piece)
        return b"".join(pieces)

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls


def _short(url: str) -> str:
    return url if len(url) <= 120 else url[:117] + "..."
