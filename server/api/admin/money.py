"""Admin routes for money: wallets (balance, credit, history, Stripe top-up), ledger verification, invoices."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.params import Parameter

from server.api.common import gateway_of, json_body, json_response, money_field
from server.billing.service import close_month, topup
from server.errors import bad_request
from server.operations import credit_wallet, find_project


@get("/wallet/{ref:str}")
async def wallet_balance(request: Request[Any, Any, Any], ref: str) -> Response[Any]:
    gw = gateway_of(request)
    project = find_project(gw, ref)
    budgets = gw.budgets
    return json_response(
        {
            "project": project.id,
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
    body = await json_body(request)
    amount = money_field(body.get("amount"), "amount")
    if amount is None:
        raise bad_request("'amount' is required.", "missing_amount", "amount")
    source_id, reason = body.get("id"), body.get("reason") or ""
    if source_id is not None and (not isinstance(source_id, str) or not 0 < len(source_id) <= 200):
        raise bad_request("'id' must be a string of at most 200 characters.", "invalid_type", "id")
    if not isinstance(reason, str):
        raise bad_request("'reason' must be a string.", "invalid_type", "reason")
    entry = await credit_wallet(gateway_of(request), ref, amount, reason, source_id)
    return json_response(entry, status=201)


@get("/wallet/{ref:str}/history")
async def wallet_history(
    request: Request[Any, Any, Any], ref: str, limit: Annotated[int, Parameter(ge=1, le=1000)] = 50
) -> Response[Any]:
    gw = gateway_of(request)
    project = find_project(gw, ref)
    return json_response({"project": project.id, "data": await gw.store.ledger_history(project.id, limit)})


@get("/ledger/verify")
async def ledger_verify(request: Request[Any, Any, Any]) -> Response[Any]:
    results = await gateway_of(request).store.verify_ledger()
    return json_response({"ok": all(r["ok"] for r in results), "projects": results})


@post("/wallet/{ref:str}/topup", status_code=201)
async def wallet_topup(request: Request[Any, Any, Any], ref: str) -> Response[Any]:
    body = await json_body(request)
    amount = money_field(body.get("amount"), "amount")
    if amount is None:
        raise bad_request("'amount' is required.", "missing_amount", "amount")
    return json_response(await topup(gateway_of(request), ref, amount), status=201)


@post("/invoices/close", status_code=200)
async def invoices_close(request: Request[Any, Any, Any]) -> Response[Any]:
    body = await json_body(request)
    documents = await close_month(
        gateway_of(request), str(body.get("month") or ""), bool(body.get("push_stripe")), body.get("project")
    )
    return json_response({"month": body.get("month"), "invoices": documents})


MONEY_HANDLERS = [wallet_balance, wallet_credit, wallet_history, wallet_topup, ledger_verify, invoices_close]
