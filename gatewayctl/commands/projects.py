"""gatewayctl projects create|list"""

from __future__ import annotations

from typing import Annotated

import typer

from gatewayctl.options import Json, Token, Url, admin
from gatewayctl.output import emit_json, fields, table

app = typer.Typer(help="Projects: the tenants that own keys, budgets and wallets.", no_args_is_help=True)
COLUMNS = ("id", "name", "plan", "billing")


@app.command("create")
def create(
    name: str,
    plan: Annotated[str | None, typer.Option("--plan", help="Plan name from config.")] = None,
    billing: Annotated[str, typer.Option("--billing", help="postpaid or prepaid.")] = "postpaid",
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Create a project."""
    project = admin(url, token).post("/projects", {"name": name, "plan": plan, "billing": billing})
    emit_json(project) if json_out else fields(project)


@app.command("list")
def list_(json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """List projects."""
    data = admin(url, token).get("/projects")["data"]
    emit_json(data) if json_out else table(data, COLUMNS)


@app.command("set-plan")
def set_plan(name: str, plan: str, json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """Put a project on a plan from config.toml (its per-endpoint limits apply at once)."""
    project = admin(url, token).request("PATCH", f"/projects/{name}", json={"plan": plan})
    emit_json(project) if json_out else fields(project)


@app.command("set-billing")
def set_billing(name: str, billing: str, json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """Switch a project between postpaid and prepaid (prepaid needs wallet balance per request)."""
    project = admin(url, token).request("PATCH", f"/projects/{name}", json={"billing": billing})
    emit_json(project) if json_out else fields(project)


@app.command("set-customer")
def set_customer(name: str, customer: str, json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """Link a project to its Stripe customer id (cus_...), for `invoices export --push-stripe`."""
    project = admin(url, token).request("PATCH", f"/projects/{name}", json={"stripe_customer_id": customer})
    emit_json(project) if json_out else fields(project)
