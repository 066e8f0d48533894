"""Helpers every handler shares: the gateway from app state, JSON bodies, ids, headers, answers."""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

import orjson
from litestar import Request, Response

from server.api.stream_response import RelayStream
from server.clock import now_ms
from server.dialects.base import Dialect
from server.errors import INVALID_AMOUNT, INVALID_JSON, INVALID_TYPE, MISSING_MODEL, NOT_AN_OBJECT
from server.gateway import Gateway
from server.money import parse_amount
from server.pipeline import RequestPath
from server.request_facts import note_model
from server.types import Call, Caller

REQUEST_ID_SCOPE_KEY = "gateway.request_id"
CLIENT_ID_SCOPE_KEY = "gateway.client_request_id"


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
    return Call(
        request_id=request.scope.get(REQUEST_ID_SCOPE_KEY) or str(uuid.uuid4()),  # type: ignore[typeddict-item]
        client_request_id=request.scope.get(CLIENT_ID_SCOPE_KEY),  # type: ignore[typeddict-item]
        endpoint=dialect.name,
        model=model if isinstance(model, str) else "",
        body=body,
        stream=stream,
        started_ms=now_ms(),
        body_bytes=len(orjson.dumps(body)),
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
    """Start and run one call of `dialect`: a streamed answer (SSE) or one JSON body, with its headers."""
    gw = gateway_of(request)
    call = new_call(request, dialect, body)
    ticket = gw.path.start(caller, call, dialect)
    if call.stream:
        opened = await gw.path.open_stream(ticket)
        headers = opened.headers | {"cache-control": "no-cache", "x-accel-buffering": "no"}
        return RelayStream(
            opened.chunks,  # type: ignore[arg-type]
            write_timeout=gw.settings.server.stream_write_timeout_s,
            media_type="text/event-stream",
            headers=headers,
        )
    served = await gw.path.serve_unary(ticket)
    return json_response(served.body, served.headers)


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
