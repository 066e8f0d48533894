"""Shared HTTP plumbing for the provider kinds that call an upstream over HTTP (openai, anthropic, gemini).

One pooled async client per provider. The client is httpx2 (httpx's maintained successor, same API):
measured in bench/ on this design, it sustained ~2.5x the throughput of httpx 0.28 at 32 concurrent
upstream calls (1,726 vs 661 req/s) because its pool does not degrade with many connections.

Timeouts are named precisely: `connect` (TCP/TLS), `first_byte` (until response headers, and the
longest silence allowed between stream chunks), `total` (the whole call).

Failure mapping (exception tree), the same for every kind:
    httpx.ConnectError / ConnectTimeout / PoolTimeout → UpstreamError 503 retryable ("connect")
    first-byte or total timeout                       → UpstreamError 504 retryable ("timeout")
    protocol/read errors, invalid JSON                → UpstreamError 502 retryable ("protocol")
    HTTP 429 and 5xx (Anthropic's 529 included)       → UpstreamError retryable (503 / 502)
    HTTP 401 / 403, Gemini's 400 API_KEY_INVALID      → UpstreamError 502, final (our credentials, not the client's)
    other HTTP 4xx                                    → UpstreamError with the upstream status, final
    stream ends or drops before its terminal event    → UpstreamError 502 retryable ("truncated")
    an answer (or one stream event) past max_response_mb → UpstreamError 502, final ("too_large")
    an error event inside a stream                    → UpstreamError 502 retryable ("stream_error")
    a body that cannot be translated (TranslationError) → its status and code; retryable only if 5xx
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2 as httpx
import orjson

from server.errors import UpstreamError, from_translation
from server.providers.base import ProviderBase
from server.providers.forms import EncodedForm
from server.providers.transport import LeanTransport
from server.redact import scrub
from server.settings import ProviderSettings
from server.streaming.sse import EventTooLarge, iter_data
from server.translate.errors import TranslationError

JSON = dict[str, Any]
PROBE_TIMEOUT_S = 5.0
DRAIN_S = 0.01  # how long a stream's body may stay open after its end event before its connection is dropped
MAX_CACHED_URLS = 1024  # paths name models (Gemini): bounded, so odd model names cannot grow it forever


class HttpProvider(ProviderBase):
    """Base for HTTP provider kinds: subclasses name their kind and set their auth headers and URLs."""

    def __init__(self, settings: ProviderSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.name = settings.name
        self.settings = settings
        self._secrets = (settings.api_key(),)  # scrubbed from every provider text we pass on
        self._timeouts = settings.timeouts
        t = settings.timeouts
        self._client = httpx.AsyncClient(
            base_url=self._base_url(settings.base_url or ""),
            headers={"content-type": "application/json", **self._auth_headers(settings.api_key())},
            timeout=httpx.Timeout(connect=t.connect, read=t.first_byte, write=t.first_byte, pool=t.connect),
            limits=httpx.Limits(
                max_connections=settings.max_connections, max_keepalive_connections=settings.max_idle_connections
            ),
            transport=transport or self._default_transport(settings),
        )
        self._urls: dict[str, httpx.URL] = {}

    @staticmethod
    def _default_transport(settings: ProviderSettings) -> httpx.AsyncBaseTransport | None:
        if settings.http_transport == "lean":
            return LeanTransport(settings.max_connections, settings.max_idle_connections)
        return None  # httpx2's own (httpcore2): proxies, HTTP/2 negotiation

    def _base_url(self, configured: str) -> str:
        return configured.rstrip("/")

    def _auth_headers(self, api_key: str | None) -> dict[str, str]:
        """Headers that carry the provider secret; none when no secret is configured."""
        return {}

    async def aclose(self) -> None:
        await self._client.aclose()

    async def probe(self) -> str:
        """GET the models list with the gateway's credentials, within min(connect + first_byte, 5 s)."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(min(self._timeouts.connect + self._timeouts.first_byte, PROBE_TIMEOUT_S)):
                response = await self._client.send(self._client.build_request("GET", "/models"), stream=True)
                if response.status_code >= 400:
                    raise await status_error(self.name, response, self._secrets)
                await response.aclose()
        except TimeoutError:
            raise timeout_error(self.name, "probe") from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise UpstreamError(
                503, f"{self.name}: cannot connect ({type(exc).__name__})", retryable=True, upstream_status="connect"
            ) from None
        except httpx.HTTPError as exc:
            raise protocol_error(self.name, exc) from None
        return f"models list answered {response.status_code} in {(time.monotonic() - started) * 1000:.0f} ms"

    def _deadline(self) -> float:
        return time.monotonic() + self._timeouts.total

    def _url(self, path: str) -> httpx.URL:
        """The absolute URL of `path` under the base URL, parsed once: joining and re-parsing it was ~5% of a
        request's CPU (bench/cpu_per_request.py --profile)."""
        url = self._urls.get(path)
        if url is None:
            url = self._client.build_request("GET", path).url
            if len(self._urls) < MAX_CACHED_URLS:
                self._urls[path] = url
        return url

    async def _open(
        self,
        path: str,
        body: JSON | None,
        deadline: float,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        *,
        method: str = "POST",
        form: EncodedForm | None = None,
    ) -> httpx.Response:
        """Send the request (a JSON body, a multipart `form` streamed from disk, or none) and wait for
        response headers (first byte); raise on a non-2xx status."""
        content: Any = None
        if form is not None:
            content = form.chunks()
            headers = {**(headers or {}), "content-type": form.content_type, "content-length": str(form.length)}
        elif body is not None:
            content = orjson.dumps(body)
        request = self._client.build_request(method, self._url(path), content=content, params=params, headers=headers)
        budget = min(self._timeouts.first_byte, max(0.0, deadline - time.monotonic()))
        try:
            async with asyncio.timeout(budget):
                response = await self._client.send(request, stream=True)
        except TimeoutError:
            raise timeout_error(self.name, "first_byte") from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise UpstreamError(
                503, f"{self.name}: cannot connect ({type(exc).__name__})", retryable=True, upstream_status="connect"
            ) from None
        except httpx.TimeoutException:
            raise timeout_error(self.name, "first_byte") from None
        except httpx.HTTPError as exc:
            raise protocol_error(self.name, exc) from None
        if response.status_code >= 400:
            raise await status_error(self.name, response, self._secrets)
        return response

    async def _post_json(
        self,
        path: str,
        body: JSON | None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        *,
        method: str = "POST",
        form: EncodedForm | None = None,
    ) -> JSON:
        """Send (POST by default) and return the JSON object answered, all within the `total` budget."""
        raw = (await self._whole(path, body, params, headers, method=method, form=form))[1]
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                502, f"{self.name} returned invalid JSON", retryable=True, upstream_status="invalid_json"
            ) from None
        if not isinstance(data, dict):
            raise UpstreamError(
                502, f"{self.name} returned a non-object body", retryable=True, upstream_status="invalid_json"
            )
        return data

    async def _whole(
        self,
        path: str,
        body: JSON | None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        *,
        method: str = "POST",
        form: EncodedForm | None = None,
    ) -> tuple[str, bytes]:
        """(content type, the whole answer), read within the `total` budget and `max_response_mb`."""
        deadline = self._deadline()
        response = await self._open(path, body, deadline, params, headers, method=method, form=form)
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                raw = await self._read_capped(response)
        except TimeoutError:
            raise timeout_error(self.name, "total") from None
        except httpx.HTTPError as exc:
            raise protocol_error(self.name, exc) from None
        finally:
            await response.aclose()
        return response.headers.get("content-type", "application/octet-stream"), raw

    async def _open_bytes(
        self,
        path: str,
        body: JSON | None,
        *,
        method: str = "POST",
        headers: dict[str, str] | None = None,
    ) -> BytesStream:
        """An answer of bytes (audio, video) opened (status checked) and read as it arrives."""
        deadline = self._deadline()
        response = await self._open(path, body, deadline, None, headers, method=method)
        return BytesStream(response, deadline, self.name, self._timeouts.first_byte)

    async def _read_capped(self, response: httpx.Response) -> bytes:
        """The whole body, refused (502) as soon as it passes `max_response_mb`, before it is all buffered."""
        cap = self.settings.max_response_mb << 20
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise too_large(self.name, cap)
        pieces, size = [], 0
        async for piece in response.aiter_bytes():
            size += len(piece)
            if size > cap:
                raise too_large(self.name, cap)
            pieces.append(piece)
        return b"".join(pieces)

    async def _open_stream(
        self,
        path: str,
        body: JSON,
        is_terminal: Callable[[JSON], bool],
        *,
        done_marker: str | None = None,
        stop_at_terminal: bool = True,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> SseStream:
        """Open an SSE response (headers received, status checked) and wrap it; see SseStream for the rest."""
        deadline = self._deadline()
        response = await self._open(path, body, deadline, params, headers)
        return SseStream(
            response,
            deadline,
            self.name,
            is_terminal,
            done_marker=done_marker,
            stop_at_terminal=stop_at_terminal,
            max_event_bytes=self.settings.max_response_mb << 20,
        )


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read the rest of a stream's body after its end event (the chunked ending usually came with it), so its
    connection goes back to the pool: closing it unread cost a new upstream connection per stream (~8% of a
    stream's CPU). Waits at most DRAIN_S; a body still open by then is dropped with its connection."""
    try:
        async with asyncio.timeout(DRAIN_S):
            async for _ in chunks:
                pass
    except (TimeoutError, httpx.HTTPError):
        pass


class SseStream:
    """Parsed JSON data objects from an SSE response, in order.

    Every kind marks its end differently, so the caller says what counts as terminal: a literal data
    payload that is not JSON (`done_marker`, OpenAI's `[DONE]`, not yielded), or an event for which
    `is_terminal` is true (yielded; Anthropic's message_stop, a Responses response.completed, a Gemini
    fragment with a finishReason). A stream that ends without either raises UpstreamError "truncated",
    so a dropped connection is never mistaken for a complete answer.
    """

    def __init__(
        self,
        response: httpx.Response,
        deadline: float,
        provider: str,
        is_terminal: Callable[[JSON], bool],
        *,
        done_marker: str | None = None,
        stop_at_terminal: bool = True,
        max_event_bytes: int = 32 << 20,
    ) -> None:
        self._response = response
        self._max_event_bytes = max_event_bytes
        self._deadline = deadline
        self._provider = provider
        self._is_terminal = is_terminal
        self._done_marker = done_marker
        self._stop_at_terminal = stop_at_terminal

    async def __aiter__(self) -> AsyncIterator[JSON]:
        finished = False
        chunks = self._response.aiter_bytes()
        try:
            async for data in iter_data(chunks, self._max_event_bytes):
                if self._done_marker is not None and data == self._done_marker:
                    await _drain(chunks)
                    return
                if time.monotonic() > self._deadline:
                    raise timeout_error(self._provider, "total")
                event = self._parse(data)
                terminal = self._is_terminal(event)
                yield event
                if terminal:
                    finished = True
                    if self._stop_at_terminal:
                        await _drain(chunks)
                        return
        except httpx.TimeoutException:
            raise timeout_error(self._provider, "first_byte") from None
        except (httpx.RemoteProtocolError, httpx.ReadError):
            raise self._truncated("the connection dropped") from None  # closed or reset mid-body
        except EventTooLarge:
            raise too_large(self._provider, self._max_event_bytes) from None
        except httpx.HTTPError as exc:
            raise protocol_error(self._provider, exc) from None
        finally:
            await self._response.aclose()
        if not finished:
            raise self._truncated("it ended")

    def _truncated(self, how: str) -> UpstreamError:
        return UpstreamError(
            502,
            f"{self._provider} stream broke: {how} before its terminal event",
            retryable=True,
            upstream_status="truncated",
        )

    def _parse(self, data: str) -> JSON:
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            event = None
        if not isinstance(event, dict):
            raise UpstreamError(
                502, f"{self._provider} sent a malformed stream event", retryable=True, upstream_status="protocol"
            )
        # Anthropic and Responses send {"type": "error", ...}; OpenAI chat and Gemini a bare {"error": ...}.
        if event.get("type") == "error" or ("error" in event and "choices" not in event and "candidates" not in event):
            raise UpstreamError(
                502,
                f"{self._provider} stream error: {scrub(error_message(event))}",
                retryable=True,
                upstream_status="stream_error",
                body=orjson.loads(scrub(orjson.dumps(event).decode())),
            )
        return event

    async def aclose(self) -> None:
        await self._response.aclose()


class BytesStream:
    """The bytes of an open response as they arrive: each read waits at most `silence_s`, never past the
    call's `total` deadline; a connection that drops mid-body raises UpstreamError ("truncated")."""

    def __init__(self, response: httpx.Response, deadline: float, provider: str, silence_s: float) -> None:
        self.content_type = response.headers.get("content-type", "application/octet-stream")
        self.length = response.headers.get("content-length")
        self._response, self._deadline, self._provider, self._silence = response, deadline, provider, silence_s

    async def _chunks(self) -> AsyncIterator[bytes]:
        pieces = self._response.aiter_bytes().__aiter__()
        try:
            while True:
                budget = min(self._silence, self._deadline - time.monotonic())
                if budget <= 0:
                    raise timeout_error(self._provider, "total")
                try:
                    async with asyncio.timeout(budget):
                        piece = await anext(pieces)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise timeout_error(self._provider, "first_byte") from None
                yield piece
        except (httpx.RemoteProtocolError, httpx.ReadError):
            raise UpstreamError(
                502, f"{self._provider} dropped the connection mid-body", retryable=True, upstream_status="truncated"
            ) from None
        except httpx.HTTPError as exc:
            raise protocol_error(self._provider, exc) from None
        finally:
            await self._response.aclose()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def aclose(self) -> None:
        await self._response.aclose()


class MappedStream:
    """An opened stream whose events go through `feed` one at a time (nothing is buffered), then `finish`.

    Used for translated chat streams (Anthropic or Gemini events in, OpenAI chunks out) and for the
    native pass-through streams (raw events in, `(event_type, data)` pairs out).
    """

    def __init__(
        self,
        source: SseStream,
        feed: Callable[[JSON], list[Any]],
        finish: Callable[[], list[Any]] | None = None,
    ) -> None:
        self._source = source
        self._feed = feed
        self._finish = finish

    async def __aiter__(self) -> AsyncIterator[Any]:
        try:
            async for event in self._source:
                for item in self._feed(event):
                    yield item
            for item in self._finish() if self._finish else []:
                yield item
        except TranslationError as exc:
            raise translation_error(exc) from None

    async def aclose(self) -> None:
        await self._source.aclose()


def typed_events(event: JSON) -> list[tuple[str, JSON]]:
    """A raw event as `(event_type, data)`: Anthropic and Responses SSE event names equal the data's `type`."""
    return [(str(event.get("type") or "message"), event)]


def translation_error(exc: TranslationError) -> UpstreamError:
    """A body the provider cannot express (or a reply we cannot read): the client sees its status and code."""
    known = from_translation(exc)  # the table's status and code for it
    error = UpstreamError(
        known.status, known.message, retryable=known.status >= 500, upstream_status="translation", code=str(known.code)
    )
    error.param = known.param
    return error


def too_large(provider: str, cap: int) -> UpstreamError:
    return UpstreamError(
        502, f"{provider} sent an answer larger than {cap >> 20} MiB", retryable=False, upstream_status="too_large"
    )


def timeout_error(provider: str, which: str) -> UpstreamError:
    return UpstreamError(504, f"{provider}: {which} timeout", retryable=True, upstream_status="timeout")


def protocol_error(provider: str, exc: Exception) -> UpstreamError:
    return UpstreamError(502, f"{provider}: {type(exc).__name__}", retryable=True, upstream_status="protocol")


def error_message(body: Any) -> str:
    """The message of an OpenAI, Anthropic or Gemini error body (all put it at error.message)."""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error.get("status") or error.get("type") or "")
    if isinstance(error, str):
        return error
    return str(body.get("message") or "")  # a Responses stream `error` event carries it at the top


def _retry_after(response: httpx.Response, body: Any) -> float | None:
    """Seconds from the Retry-After header, else from a Gemini google.rpc.RetryInfo detail ("1.5s")."""
    header = response.headers.get("retry-after")
    if header:
        try:
            seconds = float(header)
        except ValueError:
            return None  # an HTTP date or junk: fall back to our own backoff
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    error = body.get("error") if isinstance(body, dict) else None
    for detail in (error.get("details") or []) if isinstance(error, dict) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = re.fullmatch(r"(\d+(?:\.\d+)?)s", str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _credentials_refused(status: int, body: Any) -> bool:
    """401/403 anywhere, and Gemini's way of saying the same: 400 with reason API_KEY_INVALID."""
    if status in (401, 403):
        return True
    error = body.get("error") if isinstance(body, dict) else None
    details = (error.get("details") or []) if isinstance(error, dict) else []
    return status == 400 and any(isinstance(d, dict) and d.get("reason") == "API_KEY_INVALID" for d in details)


async def status_error(provider: str, response: httpx.Response, secrets: tuple[str | None, ...] = ()) -> UpstreamError:
    """The UpstreamError for a non-2xx response (its body is read, then the response is closed). The
    provider's message is scrubbed of secrets: providers echo the key they refused."""
    try:
        raw = await response.aread()
    except httpx.HTTPError:
        raw = b""
    finally:
        await response.aclose()
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    status = response.status_code
    retryable = status == 429 or status >= 500
    detail = scrub(error_message(body) or raw[:200].decode(errors="replace"), secrets)
    mapped = (503 if status == 429 else 502) if retryable else status
    if _credentials_refused(status, body):
        # The provider refused the gateway's own credentials: a gateway fault, not the client's key.
        mapped, detail = 502, f"the provider refused the gateway's credentials ({detail})"
    return UpstreamError(
        mapped,
        f"{provider} returned {status}: {detail}",
        retryable=retryable,
        upstream_status=status,
        body=orjson.loads(scrub(orjson.dumps(body).decode(), secrets)) if isinstance(body, dict) else None,
        retry_after=_retry_after(response, body),
    )
