"""Admin routes for webhooks: every project's endpoints (create for a project, list, delete, enable a
disabled one, send a test event) and the deliveries (list, one with its attempts, redeliver)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, delete, get, post
from litestar.params import Parameter

from server.api.admin.views import project_name
from server.api.common import gateway_of, json_body, json_response
from server.errors import INVALID_VALUE, MISSING_FIELD
from server.operations import find_project
from server.store.webhook_protocol import CANCELLED, DELIVERED, FAILED, PENDING

STATUSES = (PENDING, DELIVERED, FAILED, CANCELLED)


def _named(request: Request[Any, Any, Any], row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "project_name": project_name(gateway_of(request), row.get("project_id"))}


@get("/webhooks/endpoints")
async def list_endpoints(request: Request[Any, Any, Any], project: str | None = None) -> Response[Any]:
    gw = gateway_of(request)
    project_id = find_project(gw, project).id if project else None
    return json_response({"data": [_named(request, e) for e in await gw.webhooks.list(project_id)]})


@post("/webhooks/endpoints", status_code=201)
async def create_endpoint(request: Request[Any, Any, Any]) -> Response[Any]:
    body = await json_body(request)
    ref = body.get("project")
    if not isinstance(ref, str) or not ref:
        raise MISSING_FIELD(field="project")
    gw = gateway_of(request)
    created = await gw.webhooks.create(find_project(gw, ref).id, body)
    return json_response(_named(request, created), status=201)


@get("/webhooks/endpoints/{endpoint_id:str}")
async def get_endpoint(request: Request[Any, Any, Any], endpoint_id: str) -> Response[Any]:
    return json_response(_named(request, await gateway_of(request).webhooks.get(endpoint_id)))


@delete("/webhooks/endpoints/{endpoint_id:str}", status_code=200)
async def delete_endpoint(request: Request[Any, Any, Any], endpoint_id: str) -> Response[Any]:
    return json_response(await gateway_of(request).webhooks.delete(endpoint_id))


@post("/webhooks/endpoints/{endpoint_id:str}/enable", status_code=200)
async def enable_endpoint(request: Request[Any, Any, Any], endpoint_id: str) -> Response[Any]:
    return json_response(_named(request, await gateway_of(request).webhooks.enable(endpoint_id)))


@post("/webhooks/endpoints/{endpoint_id:str}/test", status_code=201)
async def test_endpoint(request: Request[Any, Any, Any], endpoint_id: str) -> Response[Any]:
    """A `webhook.test` event queued for this endpoint alone; answers its delivery (poll it for the result)."""
    return json_response(await gateway_of(request).webhooks.send_test(endpoint_id), status=201)


@get("/webhooks/deliveries")
async def list_deliveries(
    request: Request[Any, Any, Any],
    endpoint: str | None = None,
    status: str | None = None,
    project: str | None = None,
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 50,
) -> Response[Any]:
    gw = gateway_of(request)
    if status is not None and status not in STATUSES:
        raise INVALID_VALUE(field="status", what="one of " + ", ".join(STATUSES))
    project_id = find_project(gw, project).id if project else None
    if endpoint is not None:
        await gw.webhooks.find(endpoint)
    rows = await gw.webhooks.deliveries(project_id=project_id, endpoint_id=endpoint, status=status, limit=limit)
    return json_response({"data": [_named(request, row) for row in rows]})


@get("/webhooks/deliveries/{delivery_id:str}")
async def get_delivery(request: Request[Any, Any, Any], delivery_id: str) -> Response[Any]:
    return json_response(_named(request, await gateway_of(request).webhooks.delivery(delivery_id)))


@post("/webhooks/deliveries/{delivery_id:str}/redeliver", status_code=200)
async def redeliver(request: Request[Any, Any, Any], delivery_id: str) -> Response[Any]:
    """Queue the delivery again (same event id), ahead of anything newer for its endpoint."""
    return json_response(_named(request, await gateway_of(request).webhooks.redeliver(delivery_id)))


WEBHOOK_HANDLERS = [
    list_endpoints,
    create_endpoint,
    get_endpoint,
    delete_endpoint,
    enable_endpoint,
    test_endpoint,
    list_deliveries,
    get_delivery,
    redeliver,
]
