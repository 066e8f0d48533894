"""Admin routes: projects, keys, usage and request lookup, and the admin router. Thin: operations.py
does the work, views.py adds the names people use beside the ids."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from litestar import Request, Response, Router, get, patch, post, put
from litestar.params import Parameter

from server.api.admin.budgets import BUDGET_HANDLERS
from server.api.admin.filters import request_filters
from server.api.admin.guard import require_admin
from server.api.admin.money import MONEY_HANDLERS
from server.api.admin.ops import OPS_HANDLERS
from server.api.admin.tail import TAIL_HANDLERS
from server.api.admin.views import currency_header, key_view, usage_rows, with_key_names
from server.api.admin.webhooks import WEBHOOK_HANDLERS
from server.api.common import gateway_of, json_body, json_response, money_field
from server.api.openai.models import describe
from server.clock import now_ms
from server.errors import (
    EMPTY_UPDATE,
    INVALID_GROUP,
    INVALID_TYPE,
    INVALID_VALUE,
    MISSING_FIELD,
    REQUEST_NOT_FOUND,
)
from server.operations import (
    create_key,
    create_project,
    find_key,
    find_project,
    revoke_key,
    rotate_key,
    set_billing_details,
    set_project,
)
from server.replay import replay
from server.request_log import stored_bodies, why_missing

USAGE_GROUPS = ("model", "key", "project", "day")
MAX_MS = 2**53  # a millisecond timestamp past this is not a time; refused with 400
MAX_GRACE_S = 366 * 86_400
MAX_LISTED = 1000


def _optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise INVALID_TYPE(field=name, what="a string")
    return value


@get("/projects")
async def list_projects(request: Request[Any, Any, Any]) -> Response[Any]:
    gw = gateway_of(request)
    return json_response({"data": [p.public() for p in gw.snapshot.projects_by_id.values()]})


@get("/projects/{ref:str}")
async def get_project(request: Request[Any, Any, Any], ref: str) -> Response[Any]:
    return json_response(find_project(gateway_of(request), ref).public())


@post("/projects", status_code=201)
async def post_project(request: Request[Any, Any, Any]) -> Response[Any]:
    body = await json_body(request)
    project = await create_project(
        gateway_of(request), body.get("name"), _optional_str(body, "plan"), body.get("billing") or "postpaid"
    )
    return json_response(project.public(), status=201)


@patch("/projects/{ref:str}")
async def patch_project(request: Request[Any, Any, Any], ref: str) -> Response[Any]:
    body = await json_body(request)
    values: dict[str, Any] = {}
    for name in ("plan", "billing", "stripe_customer_id"):
        if name in body:
            values[name] = _optional_str(body, name)
    if "monthly_budget" in body:
        values["monthly_budget_micro"] = money_field(body["monthly_budget"], "monthly_budget") or None
    if not values:
        wanted = "plan, billing, stripe_customer_id or monthly_budget"
        raise EMPTY_UPDATE(wanted=wanted)
    return json_response((await set_project(gateway_of(request), ref, **values)).public())


@put("/projects/{ref:str}/billing-details")
async def put_billing_details(request: Request[Any, Any, Any], ref: str) -> Response[Any]:
    """Bill-to details (name, address, tax_id, email) and the project's tax_rate; given fields only."""
    body = await json_body(request)
    return json_response((await set_billing_details(gateway_of(request), ref, body)).public())


@get("/keys")
async def list_keys(request: Request[Any, Any, Any], project: str | None = None) -> Response[Any]:
    gw = gateway_of(request)
    keys = list(gw.snapshot.keys_by_id.values())
    if project:
        project_id = find_project(gw, project).id
        keys = [k for k in keys if k.project_id == project_id]
    return json_response({"data": [key_view(gw, k) for k in keys]})


@post("/keys", status_code=201)
async def post_key(request: Request[Any, Any, Any]) -> Response[Any]:
    body = await json_body(request)
    project = _optional_str(body, "project")
    if not project:
        raise MISSING_FIELD(field="project")
    expires_ms = body.get("expires_ms")
    if expires_ms is not None and (
        not isinstance(expires_ms, int) or isinstance(expires_ms, bool) or not 0 <= expires_ms <= MAX_MS
    ):
        raise INVALID_TYPE(field="expires_ms", what="a millisecond timestamp")
    scopes = {name: body.get(name) for name in ("models", "endpoints", "ips", "rpm", "tpm")}
    scopes["monthly_budget_micro"] = money_field(body.get("monthly_budget"), "monthly_budget", zero=False)
    gw = gateway_of(request)
    key, secret = await create_key(gw, project, _optional_str(body, "name"), expires_ms, scopes)
    return json_response({**key_view(gw, key), "key": secret}, status=201)


@post("/keys/{key_id:str}/rotate", status_code=200)
async def post_rotate(request: Request[Any, Any, Any], key_id: str) -> Response[Any]:
    body = await json_body(request)
    grace = body.get("grace_seconds", 0)
    if not isinstance(grace, int) or isinstance(grace, bool) or not 0 <= grace <= MAX_GRACE_S:
        raise INVALID_TYPE(field="grace_seconds", what="a whole number of seconds up to a year")
    gw = gateway_of(request)
    key, secret = await rotate_key(gw, find_key(gw, key_id).id, grace)
    return json_response({**key_view(gw, key), "key": secret})


@get("/keys/{key_id:str}")
async def get_key(request: Request[Any, Any, Any], key_id: str) -> Response[Any]:
    gw = gateway_of(request)
    return json_response(key_view(gw, find_key(gw, key_id)))


@post("/keys/{key_id:str}/revoke", status_code=200)
async def post_revoke(request: Request[Any, Any, Any], key_id: str) -> Response[Any]:
    gw = gateway_of(request)
    return json_response(key_view(gw, await revoke_key(gw, find_key(gw, key_id).id)))


@get("/usage")
async def usage(
    request: Request[Any, Any, Any],
    since_ms: Annotated[int, Parameter(ge=0, le=MAX_MS)] = 0,
    by: str = "model",
    project: str | None = None,
) -> Response[Any]:
    gw = gateway_of(request)
    if by not in USAGE_GROUPS:
        raise INVALID_GROUP(choices=", ".join(USAGE_GROUPS), param="by")
    project_id = find_project(gw, project).id if project else None
    rows = await gw.store.usage_totals(since_ms, by, project_id)
    return json_response({"since_ms": since_ms, "by": by, "data": usage_rows(gw, rows, by)})


@get("/requests")
async def list_requests(
    request: Request[Any, Any, Any],
    project: str | None = None,
    key: str | None = None,
    model: str | None = None,
    status: str | None = None,
    since_ms: Annotated[int, Parameter(ge=0, le=MAX_MS)] = 0,
    until_ms: Annotated[int, Parameter(ge=0, le=MAX_MS)] = 0,
    limit: Annotated[int, Parameter(ge=1, le=MAX_LISTED)] = 50,
) -> Response[Any]:
    """The request log, newest first, narrowed by project, key, model, status ("failed": any finished
    request that was not ok) and a time range; `until_ms` pages back (the oldest shown's started_ms)."""
    gw = gateway_of(request)
    wanted = request_filters(gw, project, key, model, status)
    filters = {**asdict(wanted), "since_ms": since_ms, "until_ms": until_ms}
    rows = await gw.store.list_requests(filters, limit)
    return json_response({"data": [with_key_names(gw, row) for row in rows]})


@get("/requests/{request_id:str}")
async def get_request(request: Request[Any, Any, Any], request_id: str, bodies: bool = True) -> Response[Any]:
    """A request by gateway id, or by the client's x-request-id: the newest carrying it, with
    `match_ids` naming every request that does (a client may reuse its ids), newest first. With its
    stored bodies (secrets already scrubbed) unless `bodies=false`; `bodies_missing` says why there are none.
    A realtime session also lists its `responses` (request rows with their usage and cost), oldest first."""
    gw = gateway_of(request)
    rows = await gw.store.requests_matching(request_id)
    if not rows:
        raise REQUEST_NOT_FOUND(ref=request_id)
    shown = {**with_key_names(gw, rows[0]), "match_ids": [row["id"] for row in rows]}
    if shown.get("session_id") == shown["id"]:  # a realtime session: its responses, each with its usage
        shown["responses"] = await gw.store.session_responses(shown["id"])
    if bodies:
        found = await gw.store.read_bodies(shown["id"])
        shown["bodies"] = stored_bodies(found) if found is not None else None
        if found is None and "responses" in shown:
            shown["bodies_missing"] = "a realtime session keeps no bodies; each response keeps its own"
        elif found is None:
            settings = gw.settings.logging
            shown["bodies_missing"] = why_missing(settings, shown["status"], shown["started_ms"], now_ms())
    return json_response(shown)


@post("/requests/{request_id:str}/replay", status_code=200)
async def post_replay(request: Request[Any, Any, Any], request_id: str) -> Response[Any]:
    """Send a logged request again through the request path (`model`, `target` or `project` change it) and
    answer both sides: model used, tokens, cost, latency and the gist of each answer."""
    body = await json_body(request)
    model, target, project = (_optional_str(body, name) for name in ("model", "target", "project"))
    if model and target:
        raise INVALID_VALUE(field="target", what="left out when 'model' is given (one or the other)")
    return json_response(await replay(gateway_of(request), request_id, model=model, target=target, project=project))


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
    middleware=[currency_header],
    route_handlers=[
        *MONEY_HANDLERS,
        *BUDGET_HANDLERS,
        *OPS_HANDLERS,
        *TAIL_HANDLERS,
        *WEBHOOK_HANDLERS,
        list_projects,
        get_project,
        post_project,
        patch_project,
        put_billing_details,
        post_rotate,
        list_keys,
        post_key,
        get_key,
        post_revoke,
        usage,
        list_requests,
        get_request,
        post_replay,
        admin_models,
    ],
)
