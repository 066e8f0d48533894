"""Helpers every handler shares: the gateway from app state, JSON bodies, ids, headers, answers."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from litestar import Request, Response

from server.api.stream_response import RelayStream
from server.cache_policy import SKIP, USE
from server.clock import now_ms
from server.dialects.base import Dialect
from server.errors import INVALID_AMOUNT, INVALID_JSON, INVALID_TYPE, INVALID_VALUE, MISSING_MODEL, NOT_AN_OBJECT
from server.gateway import Gateway
from server.idempotency import HEADER as IDEMPOTENCY_HEADER
from server.idempotency import REPLAYED as IDEMPOTENT_REPLAYED
from server.idempotency import Claim
from server.money import parse_amount
from server.pipeline import RequestPath
from server.request_facts import note_model
from server.store.protocol import IdempotencyRecord
from server.types import Call, Caller

REQUEST_ID_SCOPE_KEY = "gateway.request_id"
CLIENT_ID_SCOPE_KEY = "gateway.client_request_id"
CACHE_HEADER = "x-gateway-cache"
CACHE_MODES = {"use": USE, "bypass": SKIP, "no-store": SKIP}
ARRIVED_SCOPE_KEY = "gateway.arrived"  # time.perf_counter() when the request reached the app


def gateway_of(request: Request[Any, Any, Any]) -> Gateway:
    return request.app.state.gateway  # type: ignore[no-any-return]


def path_of(request: Request[Any, Any, Any]) -> RequestPath:
    return gateway_of(request).path


def v1(path: str) -> list[str]:
    """Every OpenAI-style route is served under /v1 and /api/v1."""
    return [f"/v1{path}", f"/api/v1{path}"]


async def json_body(request: Request[Any, Any, Any]) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise INVALID_JSON(detail=exc.msg) from None
    if not isinstance(body, dict):
        raise NOT_AN_OBJECT()
    return body


def new_call(
    request: Request[Any, Any, Any], dialect: Dialect, body: dict[str, Any], *, model_required: bool = True
) -> Call:
    """A Call for `body` in `dialect`: the public model (none for calls such as file uploads), the stream flag
    and the body's size (its input bound)."""
    model = body.get("model")
    if model_required and (not isinstance(model, str) or not model):
        raise MISSING_MODEL(param="model")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise INVALID_TYPE(field="stream", what="a boolean")
    if isinstance(model, str):
        note_model(model)
    cache_mode = request.headers.get(CACHE_HEADER)
    if cache_mode is not None:
        cache_mode = CACHE_MODES.get(cache_mode.strip().lower())
        if cache_mode is None:
            raise INVALID_VALUE(field=CACHE_HEADER, what="'use', 'bypass' or 'no-store'")
    raw = orjson.dumps(body)
    return Call(
        request_id=request.scope.get(REQUEST_ID_SCOPE_KEY) or str(uuid.uuid4()),  # type: ignore[typeddict-item]
        client_request_id=request.scope.get(CLIENT_ID_SCOPE_KEY),  # type: ignore[typeddict-item]
        endpoint=dialect.name,
        model=model if isinstance(model, str) else "",
        body=body,
        stream=stream,
        started_ms=now_ms(),
        arrived=request.scope.get(ARRIVED_SCOPE_KEY, 0.0),  # type: ignore[call-overload]
        body_bytes=len(raw),
        raw=raw,
        cache_mode=cache_mode,
    )


def client_ip(request: Request[Any, Any, Any]) -> str:
    """The peer address; behind a configured trusted proxy, the right-most untrusted X-Forwarded-For hop."""
    client = request.scope.get("client")
    peer = client[0] if client else ""
    proxies = gateway_of(request).trusted_proxies
    if not proxies or not _in(peer, proxies):
        return peer
    forwarded = request.headers.get("x-forwarded-for", "")
    for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
        if not _in(hop, proxies):
            return hop
    return peer


def _in(address: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


async def answer(
    request: Request[Any, Any, Any], caller: Caller, dialect: Dialect, body: dict[str, Any]
) -> Response[Any]:
    """Start and run one call of `dialect`: a streamed answer (SSE) or one JSON body, with its headers. With
    an Idempotency-Key, a stored first answer is replayed instead (server/idempotency.py)."""
    gw = gateway_of(request)
    call = new_call(request, dialect, body)
    claim = None
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None:
        found = await gw.idempotency.claim(caller.project_id, key, await request.body(), now_ms())
        if isinstance(found, IdempotencyRecord):
            return _replayed(gw, found)
        claim = found
    try:
        ticket = gw.path.start(caller, call, dialect, claim)
        if call.stream:
            opened = await gw.path.open_stream(ticket)
            chunks = opened.chunks if claim is None else _releasing(opened.chunks, gw, claim)
            claim = None  # the stream releases it when it ends
            return _sse(gw, chunks, opened.headers)
        served = await gw.path.serve_unary(ticket)
        return Response(content=served.content, media_type="application/json", headers=served.headers)
    finally:
        if claim is not None:
            gw.idempotency.release(claim)


def _sse(gw: Gateway, chunks: AsyncIterator[bytes], headers: dict[str, str]) -> RelayStream:
    return RelayStream(
        chunks,  # type: ignore[arg-type]
        write_timeout=gw.settings.server.stream_write_timeout_s,
        media_type="text/event-stream",
        headers=headers | {"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


async def _releasing(chunks: AsyncIterator[bytes], gw: Gateway, claim: Claim) -> AsyncIterator[bytes]:
    """An idempotent stream's frames; its key is released when the stream ends, however it ends."""
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        gw.idempotency.release(claim)
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


async def _frames(frames: list[bytes]) -> AsyncIterator[bytes]:
    for frame in frames:
        yield frame


def _replayed(gw: Gateway, record: IdempotencyRecord) -> Response[Any]:
    """The first answer again, marked `idempotent-replayed: true`: no call upstream, no charge."""
    headers = {**record.headers, IDEMPOTENT_REPLAYED: "true"}
    if record.stream:
        return _sse(gw, _frames([frame.encode() for frame in orjson.loads(record.body)]), headers)
    return Response(content=record.body, media_type="application/json", headers=headers, status_code=record.status)


def admit(request: Request[Any, Any, Any], secret: str | None) -> Caller:
    """Authenticate the caller: the per-IP safety net, the key, its IP scope."""
    return path_of(request).admit(secret, client_ip(request))


def json_response(body: Any, headers: dict[str, str] | None = None, status: int = 200) -> Response[bytes]:
    return Response(content=orjson.dumps(body), media_type="application/json", headers=headers, status_code=status)


def money_field(value: Any, name: str, *, negative: bool = False, zero: bool = True) -> int | None:
    """Currency amounts arrive as decimal strings or numbers and become integer micro-units.

    Refused with a 400 naming the field: anything that is not a finite decimal, finer than a
    micro-unit, larger than the accepted maximum, negative unless `negative`, zero unless `zero`
    (the same rules as the CLI's, from server.money.parse_amount)."""
    if value is None:
        return None
    if isinstance(value, float):
        value = repr(value)  # 0.1 stays '0.1', not its binary expansion
    try:
        return parse_amount(value, negative=negative, zero=zero)
    except ValueError as exc:
        raise INVALID_AMOUNT(field=name, detail=exc) from None
