"""Admin routes for money: wallets (balance, credit, history, Stripe top-up), ledger verification, invoices."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.params import Parameter

from server.api.admin.views import project_name
from server.api.common import gateway_of, json_body, json_response, money_field
from server.billing.invoices import month_bounds
from server.billing.service import close_month, resolve_month, topup
from server.clock import now_ms
from server.errors import INVALID_TYPE, MISSING_AMOUNT
from server.operations import credit_wallet, find_project


@get("/wallet/{ref:str}")
async def wallet_balance(request: Request[Any, Any, Any], ref: str) -> Response[Any]:
    gw = gateway_of(request)
    project = find_project(gw, ref)
    budgets = gw.budgets
    return json_response(
        {
            "project": project.id,
            "project_name": project.name,
            "billing": project.billing,
            "balance_micro": budgets.balances.get(project.id, 0),
            "reserved_micro": budgets.reserved_wallet.get(project.id, 0),
            "month": budgets.month,
            "month_spend_micro": budgets.spent_project.get(project.id, 0),
            "monthly_budget_micro": project.monthly_budget_micro,
        }
    )


@post("/wallet/{ref:str}/credit", status_code=201)
async def wallet_credit(request: Request[Any, Any, Any], ref: str) -> Response[Any]:
    """201 with the new entry; 200 with the recorded one when the same id and amount come again."""
    body = await json_body(request)
    amount = money_field(body.get("amount"), "amount", negative=True, zero=False)
    if amount is None:
        raise MISSING_AMOUNT(field="amount", hint="")
    reason = body.get("reason") or ""
    if not isinstance(reason, str):
        raise INVALID_TYPE(field="reason", what="a string")
    gw = gateway_of(request)
    entry = await credit_wallet(gw, ref, amount, reason, body.get("id"))
    answer = {**entry, "project_name": project_name(gw, entry["project_id"])}
    return json_response(answer, status=200 if entry["replayed"] else 201)


@get("/wallet/{ref:str}/history")
async def wallet_history(
    request: Request[Any, Any, Any], ref: str, limit: Annotated[int, Parameter(ge=1, le=1000)] = 50
) -> Response[Any]:
    gw = gateway_of(request)
    project = find_project(gw, ref)
    return json_response({"project": project.id, "data": await gw.store.ledger_history(project.id, limit)})


@get("/ledger/verify")
async def ledger_verify(request: Request[Any, Any, Any]) -> Response[Any]:
    gw = gateway_of(request)
    results = [{**r, "project_name": project_name(gw, r["project_id"])} for r in await gw.store.verify_ledger()]
    return json_response({"ok": all(r["ok"] for r in results), "projects": results})


@post("/ledger/verify", status_code=200)
async def ledger_verify_checkpoints(request: Request[Any, Any, Any]) -> Response[Any]:
    """Verify the chains, and that the history up to each given signed checkpoint was not rewritten."""
    body = await json_body(request)
    checkpoints = body.get("checkpoints")
    if not isinstance(checkpoints, list) or not all(isinstance(c, dict) for c in checkpoints):
        raise INVALID_TYPE(field="checkpoints", what="an array of checkpoint objects")
    gw = gateway_of(request)
    results = await gw.store.verify_ledger()
    problems: list[str] = []
    for checkpoint in checkpoints:
        entries = await gw.store.ledger_entries(str(checkpoint.get("project_id") or ""))
        problems += gw.chain.verify_checkpoint(checkpoint, entries)
    ok = all(r["ok"] for r in results) and not problems
    return json_response(
        {"ok": ok, "projects": results, "checkpoints": len(checkpoints), "checkpoint_problems": problems}
    )


@get("/ledger/checkpoints")
async def ledger_checkpoints(
    request: Request[Any, Any, Any], at_ms: Annotated[int | None, Parameter(ge=0, le=2**53)] = None
) -> Response[Any]:
    """Signed checkpoints of every project's ledger (now, or as it stood at `at_ms`): keep them outside
    the database; `ledger verify --checkpoint` proves the history up to them was not rewritten."""
    gw = gateway_of(request)
    when = now_ms() if at_ms is None else at_ms
    states = await gw.store.ledger_states(when + (1 if at_ms is None else 0))
    return json_response({"at_ms": when, "checkpoints": [gw.chain.checkpoint(s, when) for s in states]})


@post("/wallet/{ref:str}/topup", status_code=201)
async def wallet_topup(request: Request[Any, Any, Any], ref: str) -> Response[Any]:
    body = await json_body(request)
    amount = money_field(body.get("amount"), "amount", zero=False)
    if amount is None:
        raise MISSING_AMOUNT(field="amount", hint="")
    return json_response(await topup(gateway_of(request), ref, amount), status=201)


@post("/invoices/close", status_code=200)
async def invoices_close(request: Request[Any, Any, Any]) -> Response[Any]:
    """Numbered, frozen invoices for an ended month ('last' = the last ended month), drafts otherwise; for an
    ended month also the signed ledger checkpoints at its end, to be kept beside the invoices."""
    body = await json_body(request)
    gw = gateway_of(request)
    month, closed = resolve_month(gw, str(body.get("month") or ""))
    documents = await close_month(gw, month, bool(body.get("push_stripe")), body.get("project"))
    answer: dict[str, Any] = {"month": month, "closed": closed, "invoices": documents}
    if closed:
        end = month_bounds(month, gw.settings.billing.timezone)[1]
        wanted = {doc["project"]["id"] for doc in documents}
        states = [s for s in await gw.store.ledger_states(end) if s["id"] in wanted]
        answer["ledger_checkpoints"] = [gw.chain.checkpoint(state, end) for state in states]
    return json_response(answer)


MONEY_HANDLERS = [
    wallet_balance,
    wallet_credit,
    wallet_history,
    wallet_topup,
    ledger_verify,
    ledger_verify_checkpoints,
    ledger_checkpoints,
    invoices_close,
]
