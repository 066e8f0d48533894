"""Admin routes: projects, keys, usage and request lookup. Thin: operations.py does the work."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, Router, get, patch, post
from litestar.params import Parameter

from server.api.admin.guard import require_admin
from server.api.admin.money import MONEY_HANDLERS
from server.api.common import gateway_of, json_body, json_response, money_field
from server.api.openai.models import describe
from server.errors import GatewayError, bad_request
from server.operations import (
    create_key,
    create_project,
    find_key,
    find_project,
    revoke_key,
    rotate_key,
    set_key_budget,
    set_project,
)

USAGE_GROUPS = ("model", "key", "project", "day")
MAX_MS = 2**53  # a millisecond timestamp past this is not a time; refused with 400
MAX_GRACE_S = 366 * 86_400


def _optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise bad_request(f"'{name}' must be a string.", "invalid_type", name)
    return value


@get("/projects")
async def list_projects(request: Request[Any, Any, Any]) -> Response[Any]:
    gw = gateway_of(request)
    return json_response({"data": [p.public() for p in gw.snapshot.projects_by_id.values()]})


@post("/projects", status_code=201)
async def post_project(request: Request[Any, Any, Any]) -> Response[Any]:
    body = await json_body(request)
    project = await create_project(
        gateway_of(request), body.get("name"), _optional_str(body, "plan"), body.get("billing") or "postpaid"
    )
    return json_response(project.public(), status=201)


@get("/keys")
async def list_keys(request: Request[Any, Any, Any], project: str | None = None) -> Response[Any]:
    gw = gateway_of(request)
    keys = gw.snapshot.keys_by_id.values()
    if project:
        project_id = find_project(gw, project).id
        keys = [k for k in keys if k.project_id == project_id]  # type: ignore[assignment]
    return json_response({"data": [k.public() for k in keys]})


@patch("/projects/{ref:str}")
async def patch_project(request: Request[Any, Any, Any], ref: str) -> Response[Any]:
    body = await json_body(request)
    values: dict[str, Any] = {}
    if "plan" in body:
        values["plan"] = _optional_str(body, "plan")
    if "billing" in body:
        values["billing"] = _optional_str(body, "billing")
    if "stripe_customer_id" in body:
        values["stripe_customer_id"] = _optional_str(body, "stripe_customer_id")
    if "monthly_budget" in body:
        budget = money_field(body["monthly_budget"], "monthly_budget")
        values["monthly_budget_micro"] = budget or None
    if not values:
        raise bad_request("Nothing to change: give plan, billing or monthly_budget.", "empty_update")
    return json_response((await set_project(gateway_of(request), ref, **values)).public())


@post("/keys", status_code=201)
async def post_key(request: Request[Any, Any, Any]) -> Response[Any]:
    body = await json_body(request)
    project = _optional_str(body, "project")
    if not project:
        raise bad_request("'project' is required.", "missing_project", "project")
    expires_ms = body.get("expires_ms")
    if expires_ms is not None and (
        not isinstance(expires_ms, int) or isinstance(expires_ms, bool) or not 0 <= expires_ms <= MAX_MS
    ):
        raise bad_request("'expires_ms' must be a millisecond timestamp.", "invalid_type", "expires_ms")
    scopes = {name: body.get(name) for name in ("models", "endpoints", "ips", "rpm", "tpm")}
    scopes["monthly_budget_micro"] = money_field(body.get("monthly_budget"), "monthly_budget")
    key, secret = await create_key(gateway_of(request), project, _optional_str(body, "name"), expires_ms, scopes)
    return json_response({**key.public(), "key": secret}, status=201)


@post("/keys/{key_id:str}/rotate", status_code=200)
async def post_rotate(request: Request[Any, Any, Any], key_id: str) -> Response[Any]:
    body = await json_body(request)
    grace = body.get("grace_seconds", 0)
    if not isinstance(grace, int) or isinstance(grace, bool) or not 0 <= grace <= MAX_GRACE_S:
        raise bad_request("'grace_seconds' must be a non-negative integer.", "invalid_type", "grace_seconds")
    key, secret = await rotate_key(gateway_of(request), key_id, grace)
    return json_response({**key.public(), "key": secret})


@post("/budgets", status_code=200)
async def post_budget(request: Request[Any, Any, Any]) -> Response[Any]:
    body = await json_body(request)
    monthly = money_field(body.get("monthly"), "monthly") or None
    gw = gateway_of(request)
    if body.get("key"):
        key = await set_key_budget(gw, str(body["key"]), monthly)
        return json_response({"key": key.id, "monthly_budget_micro": key.scopes.monthly_budget_micro})
    if body.get("project"):
        project = await set_project(gw, str(body["project"]), monthly_budget_micro=monthly)
        return json_response({"project": project.id, "monthly_budget_micro": project.monthly_budget_micro})
    raise bad_request("Give 'project' or 'key'.", "missing_scope")


@get("/keys/{key_id:str}")
async def get_key(request: Request[Any, Any, Any], key_id: str) -> Response[Any]:
    return json_response(find_key(gateway_of(request), key_id).public())


@post("/keys/{key_id:str}/revoke", status_code=200)
async def post_revoke(request: Request[Any, Any, Any], key_id: str) -> Response[Any]:
    return json_response((await revoke_key(gateway_of(request), key_id)).public())


@get("/usage")
async def usage(
    request: Request[Any, Any, Any],
    since_ms: Annotated[int, Parameter(ge=0, le=MAX_MS)] = 0,
    by: str = "model",
    project: str | None = None,
) -> Response[Any]:
    gw = gateway_of(request)
    if by not in USAGE_GROUPS:
        raise bad_request(f"'by' must be one of {', '.join(USAGE_GROUPS)}.", "invalid_group", "by")
    project_id = find_project(gw, project).id if project else None
    rows = await gw.store.reader.usage_totals(since_ms, by, project_id)
    return json_response({"since_ms": since_ms, "by": by, "data": rows})


@get("/requests/{request_id:str}")
async def get_request(request: Request[Any, Any, Any], request_id: str) -> Response[Any]:
    row = await gateway_of(request).store.reader.request(request_id)
    if row is None:
        raise GatewayError(404, f"No request '{request_id}'.", code="request_not_found")
    return json_response(row)


@get("/models")
async def admin_models(request: Request[Any, Any, Any]) -> Response[Any]:
    gw = gateway_of(request)
    data = [
        describe(gw, m) | {"targets": [str(t) for t in m.targets], "price_micro_per_1m": dict(m.rates.card)}
        for m in gw.snapshot.models.values()
    ]
    return json_response({"data": data})


admin_router = Router(
    path="/admin/v1",
    guards=[require_admin],
    route_handlers=[
        *MONEY_HANDLERS,
        list_projects,
        post_project,
        patch_project,
        post_rotate,
        post_budget,
        list_keys,
        post_key,
        get_key,
        post_revoke,
        usage,
        get_request,
        admin_models,
    ],
)
