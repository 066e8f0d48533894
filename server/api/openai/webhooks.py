"""/v1/webhooks/endpoints: a project's signed webhook endpoints, managed with its API key (endpoint class
`webhooks`; a key scoped to other classes gets 403). Thin: server/webhooks/service.py does the work."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, delete, get, post

from server.api.common import admit, gateway_of, json_body, json_response, v1
from server.keys import bearer_token
from server.types import Caller
from server.webhooks.service import Webhooks


def _caller(request: Request[Any, Any, Any]) -> tuple[Caller, Webhooks]:
    caller = admit(request, bearer_token(request.headers.get("authorization")))
    assert caller.key is not None
    caller.key.scopes.check_call("webhooks", None)
    return caller, gateway_of(request).webhooks


@post(v1("/webhooks/endpoints"), status_code=201)
async def create_endpoint(request: Request[Any, Any, Any]) -> Response[Any]:
    """`{url, events, description?}` → the endpoint, with its signing secret (shown only here)."""
    caller, webhooks = _caller(request)
    body = await json_body(request)
    return json_response(await webhooks.create(caller.project_id, body), status=201)


@get(v1("/webhooks/endpoints"))
async def list_endpoints(request: Request[Any, Any, Any]) -> Response[Any]:
    caller, webhooks = _caller(request)
    return json_response({"object": "list", "data": await webhooks.list(caller.project_id)})


@get(v1("/webhooks/endpoints/{endpoint_id:str}"))
async def get_endpoint(request: Request[Any, Any, Any], endpoint_id: str) -> Response[Any]:
    caller, webhooks = _caller(request)
    return json_response(await webhooks.get(endpoint_id, caller.project_id))


@delete(v1("/webhooks/endpoints/{endpoint_id:str}"), status_code=200)
async def delete_endpoint(request: Request[Any, Any, Any], endpoint_id: str) -> Response[Any]:
    caller, webhooks = _caller(request)
    return json_response(await webhooks.delete(endpoint_id, caller.project_id))


@post(v1("/webhooks/endpoints/{endpoint_id:str}/rotate_secret"), status_code=200)
async def rotate_secret(request: Request[Any, Any, Any], endpoint_id: str) -> Response[Any]:
    """A new secret (in this answer only); the old one keeps signing beside it for 24 hours."""
    caller, webhooks = _caller(request)
    return json_response(await webhooks.rotate(endpoint_id, caller.project_id))


WEBHOOK_ROUTES = [create_endpoint, list_endpoints, get_endpoint, delete_endpoint, rotate_secret]
