"""Helpers every handler shares: the gateway from app state, JSON bodies, ids, headers."""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

import orjson
from litestar import Request, Response
from litestar.response import Stream

from server.admission import Ticket
from server.clock import now_ms
from server.errors import bad_request
from server.gateway import Gateway
from server.money import format_credits, parse_amount
from server.pipeline import OpenedStream, Served, open_stream, serve_unary
from server.request_facts import note_model
from server.types import Call

REQUEST_ID_SCOPE_KEY = "gateway.request_id"
CLIENT_ID_SCOPE_KEY = "gateway.client_request_id"
EXTRA_HEADERS_SCOPE_KEY = "gateway.extra_headers"


def gateway_of(request: Request[Any, Any, Any]) -> Gateway:
    return request.app.state.gateway  # type: ignore[no-any-return]


def v1(path: str) -> list[str]:
    """Every OpenAI-style route is served under /v1 and /api/v1."""
    return [f"/v1{path}", f"/api/v1{path}"]


async def json_body(request: Request[Any, Any, Any]) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"The request body is not valid JSON: {exc.msg}.", "invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.", "invalid_json")
    return body


def new_call(
    request: Request[Any, Any, Any], endpoint: str, body: dict[str, Any], endpoint_class: str = "chat"
) -> Call:
    """A Call whose response headers (rate limits, …) the request-id layer adds to whatever answer leaves."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("you must provide a model parameter", "missing_model", "model")
    call = Call(
        request_id=request.scope.get(REQUEST_ID_SCOPE_KEY) or str(uuid.uuid4()),  # type: ignore[typeddict-item]
        client_request_id=request.scope.get(CLIENT_ID_SCOPE_KEY),  # type: ignore[typeddict-item]
        endpoint=endpoint,
        model=model,
        body=body,
        stream=bool(body.get("stream")),
        started_ms=now_ms(),
        endpoint_class=endpoint_class,
        body_bytes=len(orjson.dumps(body)),
    )
    request.scope[EXTRA_HEADERS_SCOPE_KEY] = call.headers  # type: ignore[literal-required]
    note_model(model)
    return call


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


def served_headers(call: Call, served: Served | OpenedStream) -> dict[str, str]:
    headers = {"x-model-used": served.target.model}
    if served.depth:
        headers["x-fallback-from"] = call.model
        headers["x-fallback-depth"] = str(served.depth)
    if isinstance(served, Served):
        headers["x-credits-used"] = format_credits(served.charge.micro)
    return headers


async def respond(gw: Gateway, ticket: Ticket) -> Response[Any]:
    """Run an admitted call: a streamed answer (SSE) or one JSON body, with the gateway's headers."""
    call = ticket.call
    if call.stream:
        opened = await open_stream(gw, ticket)
        headers = served_headers(call, opened) | {"cache-control": "no-cache", "x-accel-buffering": "no"}
        return Stream(opened.chunks, media_type="text/event-stream", headers=headers)
    served = await serve_unary(gw, ticket)
    return json_response(served.body, served_headers(call, served))


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
        raise bad_request(f"'{name}': {exc}.", "invalid_amount", name) from None
