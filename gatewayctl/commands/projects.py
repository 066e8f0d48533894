"""gatewayctl projects create|list|show|set-plan|set-billing|set-customer|set-billing-details"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from gatewayctl import humanize
from gatewayctl.options import Ids, Json, ProjectName, Token, Url, admin, group
from gatewayctl.output import emit_json, fields, table
from gatewayctl.table import Column

app = group("Projects: the tenants that own keys, budgets and wallets.")


class Billing(StrEnum):
    postpaid = "postpaid"
    prepaid = "prepaid"


def show_project(project: dict[str, Any], currency: str) -> None:
    details = project.get("billing_details") or {}
    bill_to = [line for k in ("name", "address", "tax_id", "email") for line in (details.get(k) or "").splitlines()]
    tax = details.get("tax_rate")
    fields(
        [
            ("name", project["name"]),
            ("id", project["id"]),
            ("plan", project.get("plan") or "default"),
            ("billing", project["billing"]),
            ("monthly budget", humanize.money(project.get("monthly_budget_micro"), currency) or "none"),
            ("stripe customer", project.get("stripe_customer_id") or "none"),
            ("bill to", bill_to or ["not set (projects set-billing-details)"]),
            ("tax rate", f"{tax} %" if tax is not None else "the default ([billing] tax_rate)"),
            ("created", humanize.moment(project.get("created_ms"))),
        ]
    )


def _print(project: dict[str, Any], json_out: bool, currency: str) -> None:
    emit_json(project) if json_out else show_project(project, currency)


@app.command("create")
def create(
    name: str,
    plan: Annotated[str | None, typer.Option("--plan", help="Plan name from config.")] = None,
    billing: Annotated[Billing, typer.Option("--billing", help="Postpaid (invoiced) or prepaid (wallet).")] = (
        Billing.postpaid
    ),
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Create a project."""
    client = admin(url, token)
    project = client.post("/projects", {"name": name, "plan": plan, "billing": billing.value})
    _print(project, json_out, client.currency)


@app.command("list")
def list_(ids: Ids = False, json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """List projects."""
    client = admin(url, token)
    data = client.get("/projects")["data"]
    if json_out:
        emit_json(data)
        return
    budgets = humanize.money_column([p.get("monthly_budget_micro") for p in data], client.currency)
    rows = [
        {
            "id": p["id"],
            "name": p["name"],
            "plan": p.get("plan") or "default",
            "billing": p["billing"],
            "budget": budget,
            "created": humanize.relative(p.get("created_ms")),
        }
        for p, budget in zip(data, budgets, strict=True)
    ]
    columns = [
        *([Column("id", "ID")] if ids else []),
        Column("name", "NAME"),
        Column("plan", "PLAN", elide=True),
        Column("billing", "BILLING"),
        Column("budget", "MONTHLY BUDGET", align="right"),
        Column("created", "CREATED", elide=True),
    ]
    table(columns, rows, empty="no projects yet: gatewayctl projects create NAME")


@app.command("show")
def show(name: ProjectName, json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """Show one project.

    Plan, billing mode, budget, Stripe customer and billing details.
    """
    client = admin(url, token)
    _print(client.get(f"/projects/{name}"), json_out, client.currency)


def _patch(name: str, body: dict[str, Any], json_out: bool, url: str | None, token: str | None) -> None:
    client = admin(url, token)
    _print(client.patch(f"/projects/{name}", body), json_out, client.currency)


@app.command("set-plan")
def set_plan(name: ProjectName, plan: str, json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """Put a project on a plan.

    A plan from config.toml; its per-endpoint limits apply at once.
    """
    _patch(name, {"plan": plan}, json_out, url, token)


@app.command("set-billing")
def set_billing(
    name: ProjectName, billing: Billing, json_out: Json = False, url: Url = None, token: Token = None
) -> None:
    """Switch between postpaid and prepaid.

    A prepaid project needs wallet balance for each request's worst-case cost.
    """
    _patch(name, {"billing": billing.value}, json_out, url, token)


@app.command("set-customer")
def set_customer(
    name: ProjectName, customer: str, json_out: Json = False, url: Url = None, token: Token = None
) -> None:
    """Link a project to its Stripe customer.

    The customer id (cus_...) is used by `invoices export --push-stripe`.
    """
    _patch(name, {"stripe_customer_id": customer}, json_out, url, token)


@app.command("set-billing-details")
def set_billing_details(
    name: ProjectName,
    legal_name: Annotated[str | None, typer.Option("--name", help="Legal name on invoices.")] = None,
    address: Annotated[str | None, typer.Option("--address", help="Postal address; use \\n between lines.")] = None,
    tax_id: Annotated[str | None, typer.Option("--tax-id", help="VAT number or other tax id.")] = None,
    email: Annotated[str | None, typer.Option("--email", help="Where invoices go.")] = None,
    tax_rate: Annotated[
        str | None, typer.Option("--tax-rate", help="Tax percent for this project, e.g. 20; 'default' to unset.")
    ] = None,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Set who the project's invoices go to.

    Name, address, tax id, email and the tax rate; options not given keep their value ('' clears one).
    """
    given = {"name": legal_name, "address": address, "tax_id": tax_id, "email": email, "tax_rate": tax_rate}
    body: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if "address" in body:
        body["address"] = body["address"].replace("\\n", "\n")
    if body.get("tax_rate") == "default":
        body["tax_rate"] = None
    if not body:
        raise typer.BadParameter("give at least one of --name, --address, --tax-id, --email, --tax-rate")
    client = admin(url, token)
    _print(client.put(f"/projects/{name}/billing-details", body), json_out, client.currency)
