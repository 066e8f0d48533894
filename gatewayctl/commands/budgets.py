"""gatewayctl budgets set|show|list: monthly budgets of projects and keys, with this month's spend."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from gatewayctl import humanize
from gatewayctl.completion import keys as complete_keys
from gatewayctl.errors import usage_error
from gatewayctl.options import Ids, Json, OptionalProject, Token, Url, admin, amount, group
from gatewayctl.output import emit_json, fields, note, table
from gatewayctl.table import Column

app = group("Monthly budgets for projects and keys.")

Key = Annotated[str | None, typer.Option("--key", help="Key id.", autocompletion=complete_keys)]


def _scope(project: str | None, key: str | None) -> dict[str, str]:
    if bool(project) == bool(key):
        raise usage_error("give exactly one of --project or --key")
    return {"project": project} if project else {"key": key}  # type: ignore[dict-item]


def _percent(row: dict[str, Any]) -> str:
    budget = row.get("monthly_budget_micro")
    return f"{100 * row['spent_micro'] / budget:.0f} %" if budget else ""


def _show(row: dict[str, Any], month: str, currency: str) -> None:
    budget = row.get("monthly_budget_micro")
    owner = row["name"] if row["scope"] == "project" else f"{row['name']} (project {row['project_name']})"
    fields(
        [
            (row["scope"], f"{owner} [{row['id']}]"),
            ("monthly budget", humanize.money(budget, currency) if budget else "none"),
            (f"spent in {month}", humanize.money(row["spent_micro"], currency)),
            ("reserved in flight", humanize.money(row.get("reserved_micro") or 0, currency)),
            ("used", _percent(row) or "no budget set"),
            ("resets", humanize.moment(row.get("resets_ms")) if budget else "n/a"),
        ]
    )


@app.command("set")
def budgets_set(
    monthly: Annotated[
        int,
        typer.Option(
            "--monthly",
            parser=amount(),
            metavar="AMOUNT",
            help="Budget per calendar month in currency units (0 clears).",
        ),
    ],
    project: OptionalProject = None,
    key: Key = None,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Set the monthly budget of a project or a key (0 clears it)."""
    from server.money import format_credits

    body = {**_scope(project, key), "monthly": format_credits(monthly)}
    client = admin(url, token)
    result = client.post("/budgets", body)
    if json_out:
        emit_json(result)
    else:
        _show(result, result["month"], client.currency)


@app.command("show")
def budgets_show(
    project: OptionalProject = None, key: Key = None, json_out: Json = False, url: Url = None, token: Token = None
) -> None:
    """Show one budget.

    A project's or key's budget, its spend this month and what requests in flight reserve.
    """
    client = admin(url, token)
    result = client.get("/budgets", **_scope(project, key))
    if json_out:
        emit_json(result)
        return
    [row] = result["data"]
    _show(row, result["month"], client.currency)


@app.command("list")
def budgets_list(ids: Ids = False, json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """List budgets.

    Every project and key with a monthly budget, and how much of it this month used.
    """
    client = admin(url, token)
    result = client.get("/budgets")
    if json_out:
        emit_json(result)
        return
    data = result["data"]
    budgets = humanize.money_column([r["monthly_budget_micro"] for r in data], client.currency)
    spent = humanize.money_column([r["spent_micro"] for r in data], client.currency)
    rows = [
        {
            "id": r["id"],
            "scope": r["scope"],
            "name": r["name"],
            "project": r["project_name"],
            "budget": b,
            "spent": s,
            "used": _percent(r),
        }
        for r, b, s in zip(data, budgets, spent, strict=True)
    ]
    note(f"budgets for {result['month']} ({result['timezone']})")
    columns = [
        *([Column("id", "ID")] if ids else []),
        Column("scope", "SCOPE"),
        Column("name", "NAME"),
        Column("project", "PROJECT", elide=True),
        Column("budget", "BUDGET", align="right"),
        Column("spent", "SPENT", align="right"),
        Column("used", "USED", align="right"),
    ]
    table(columns, rows, empty="no budgets set: gatewayctl budgets set --project NAME --monthly AMOUNT")
