"""gatewayctl budgets set, wallet balance|credit|history, ledger verify."""

from __future__ import annotations

from typing import Annotated

import typer

from gatewayctl.errors import CliError
from gatewayctl.options import Json, Token, Url, admin
from gatewayctl.output import console, emit_json, fields, table
from server.money import format_credits

Project = Annotated[str, typer.Option("--project", help="Project name or id.")]

budgets_app = typer.Typer(help="Monthly budgets for projects and keys.", no_args_is_help=True)
wallet_app = typer.Typer(help="Project wallets: balance, operator credits, history.", no_args_is_help=True)
ledger_app = typer.Typer(help="The append-only ledger.", no_args_is_help=True)


@budgets_app.command("set")
def budgets_set(
    monthly: Annotated[str, typer.Option("--monthly", help="Budget per calendar month in currency units (0 clears).")],
    project: Annotated[str | None, typer.Option("--project", help="Project name or id.")] = None,
    key: Annotated[str | None, typer.Option("--key", help="Key id.")] = None,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Set the monthly budget of a project or a key."""
    if bool(project) == bool(key):
        raise CliError("give exactly one of --project or --key", 2)
    result = admin(url, token).post("/budgets", {"project": project, "key": key, "monthly": monthly})
    emit_json(result) if json_out else fields(result)


@wallet_app.command("balance")
def wallet_balance(project: Project, json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """A project's balance (the sum of its ledger entries), reservations and month-to-date spend."""
    result = admin(url, token).get(f"/wallet/{project}")
    if json_out:
        emit_json(result)
        return
    console.print(f"balance: {format_credits(result['balance_micro'])} ({result['billing']})")
    console.print(f"reserved by requests in flight: {format_credits(result['reserved_micro'])}")
    console.print(f"spent in {result['month']}: {format_credits(result['month_spend_micro'])}")


@wallet_app.command("credit")
def wallet_credit(
    project: Project,
    amount: Annotated[str, typer.Option("--amount", help="Currency units; negative to debit.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the ledger).")],
    adjustment_id: Annotated[str | None, typer.Option("--id", help="Idempotency id for this adjustment.")] = None,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """An operator adjustment to a project's wallet (audited in the ledger)."""
    body = {"amount": amount, "reason": reason, "id": adjustment_id}
    entry = admin(url, token).post(f"/wallet/{project}/credit", body)
    if json_out:
        emit_json(entry)
        return
    amount, balance = format_credits(entry["amount_micro"]), format_credits(entry["balance_after_micro"])
    console.print(f"{entry['id']}: {amount}, balance {balance}")


@wallet_app.command("history")
def wallet_history(
    project: Project,
    limit: Annotated[int, typer.Option("--limit", help="Most recent entries to show.")] = 50,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """The project's ledger entries, newest first."""
    data = admin(url, token).get(f"/wallet/{project}/history", limit=limit)["data"]
    if json_out:
        emit_json(data)
        return
    for row in data:
        row["amount"] = format_credits(row["amount_micro"])
        row["balance"] = format_credits(row["balance_after_micro"])
    table(data, ("id", "kind", "source_id", "amount", "balance", "memo"))


@wallet_app.command("topup")
def wallet_topup(
    project: Project,
    amount: Annotated[str, typer.Option("--amount", help="Currency units to add (whole cents).")],
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Open a Stripe Checkout Session for a top-up and print its URL; the wallet is credited when Stripe confirms."""
    result = admin(url, token).post(f"/wallet/{project}/topup", {"amount": amount})
    if json_out:
        emit_json(result)
        return
    console.print(result["url"])
    console.print(f"[dim]order {result['order_id']}: the wallet is credited once Stripe confirms the payment[/dim]")


@ledger_app.command("verify")
def ledger_verify(json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """Prove every balance equals the sum of its entries and no entry was altered or removed."""
    result = admin(url, token).get("/ledger/verify")
    if json_out:
        emit_json(result)
    else:
        for project in result["projects"]:
            status = "ok" if project["ok"] else "FAILED"
            balance = format_credits(project["balance_micro"])
            console.print(f"{project['project_id']}: {status}, {project['entries']} entries, balance {balance}")
            for problem in project["problems"]:
                console.print(f"  - {problem}")
    if not result["ok"]:
        raise CliError("ledger verification failed")
