"""Admin routes for budgets: set one (project or key), list them all, show one with this month's spend.

Spend and reservations come from the in-memory budgets the request path checks (so they are exactly
what the next request is measured against); a month the budgets have not rolled into yet shows 0.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post

from server.api.admin.views import project_name
from server.api.common import gateway_of, json_body, json_response, money_field
from server.budget import month_key, next_month_start
from server.clock import now_ms
from server.errors import MISSING_AMOUNT, MISSING_SCOPE
from server.gateway import Gateway
from server.operations import find_key, find_project, set_key_budget, set_project
from server.snapshot import KeyEntry, ProjectEntry


def _month(gw: Gateway) -> tuple[str, int]:
    zone = gw.settings.billing.timezone
    month = month_key(now_ms(), zone)
    return month, int(next_month_start(month, zone).timestamp() * 1000)


def budget_row(gw: Gateway, entry: ProjectEntry | KeyEntry) -> dict[str, Any]:
    budgets = gw.budgets
    month, resets_ms = _month(gw)
    current = budgets.month == month
    if isinstance(entry, ProjectEntry):
        scope, name, project_id, budget = "project", entry.name, entry.id, entry.monthly_budget_micro
        spent, reserved = budgets.spent_project, budgets.reserved_project
    else:
        scope, name, project_id = "key", entry.name or entry.prefix, entry.project_id
        budget, spent, reserved = entry.scopes.monthly_budget_micro, budgets.spent_key, budgets.reserved_key
    return {
        "scope": scope,
        "id": entry.id,
        "name": name,
        "project_id": project_id,
        "project_name": project_name(gw, project_id),
        "monthly_budget_micro": budget,
        "spent_micro": spent.get(entry.id, 0) if current else 0,
        "reserved_micro": reserved.get(entry.id, 0),
        "month": month,
        "resets_ms": resets_ms,
    }


def _answer(gw: Gateway, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"month": _month(gw)[0], "timezone": gw.settings.billing.timezone, "data": rows}


@post("/budgets", status_code=200)
async def post_budget(request: Request[Any, Any, Any]) -> Response[Any]:
    """Set a monthly budget (0 clears it); answers the budget row, with `project` or `key` naming it."""
    body = await json_body(request)
    monthly = money_field(body.get("monthly"), "monthly")
    if monthly is None:
        raise MISSING_AMOUNT(field="monthly", hint=" (0 clears the budget)")
    gw = gateway_of(request)
    if body.get("key"):
        key = await set_key_budget(gw, str(body["key"]), monthly or None)
        return json_response({**budget_row(gw, key), "key": key.id, "timezone": gw.settings.billing.timezone})
    if body.get("project"):
        project = await set_project(gw, str(body["project"]), monthly_budget_micro=monthly or None)
        answer = {**budget_row(gw, project), "project": project.id, "timezone": gw.settings.billing.timezone}
        return json_response(answer)
    raise MISSING_SCOPE()


@get("/budgets")
async def get_budgets(
    request: Request[Any, Any, Any], project: str | None = None, key: str | None = None
) -> Response[Any]:
    """Every budget set (projects, then keys), or one project's or key's row whether set or not."""
    gw = gateway_of(request)
    if project:
        return json_response(_answer(gw, [budget_row(gw, find_project(gw, project))]))
    if key:
        return json_response(_answer(gw, [budget_row(gw, find_key(gw, key))]))
    snapshot = gw.snapshot
    entries: list[ProjectEntry | KeyEntry] = [p for p in snapshot.projects_by_id.values() if p.monthly_budget_micro]
    entries += [k for k in snapshot.keys_by_id.values() if k.scopes.monthly_budget_micro and k.revoked_ms is None]
    return json_response(_answer(gw, [budget_row(gw, entry) for entry in entries]))


BUDGET_HANDLERS = [post_budget, get_budgets]
