"""gatewayctl models list, usage, requests show: read-only views of the gateway."""

from __future__ import annotations

from typing import Annotated

import typer

from gatewayctl.options import Json, Token, Url, admin
from gatewayctl.output import emit_json, fields, table
from gatewayctl.timeparse import since_ms
from server.money import format_credits

models_app = typer.Typer(help="Models the gateway serves.", no_args_is_help=True)
requests_app = typer.Typer(help="The request log.", no_args_is_help=True)


@models_app.command("list")
def models_list(json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """List public models with targets and prices."""
    data = admin(url, token).get("/models")["data"]
    if json_out:
        emit_json(data)
        return
    rows = [
        {
            "model": m["id"],
            "targets": ", ".join(m["targets"]),
            "input/1M": m["pricing"]["input"],
            "output/1M": m["pricing"]["output"],
            "capabilities": ", ".join(m["capabilities"]),
        }
        for m in data
    ]
    table(rows, ("model", "targets", "input/1M", "output/1M", "capabilities"))


def usage(
    since: Annotated[str, typer.Option("--since", help="30m, 24h, 7d or an ISO date.")] = "24h",
    by: Annotated[str, typer.Option("--by", help="model, key, project or day.")] = "model",
    project: Annotated[str | None, typer.Option("--project", help="Only this project.")] = None,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Requests, tokens and cost totals since a time, grouped by model (or key, project, day)."""
    result = admin(url, token).get("/usage", since_ms=since_ms(since), by=by, project=project)
    rows = result["data"]
    for row in rows:
        row["cost"] = format_credits(row["cost_micro"] or 0)
    if json_out:
        emit_json(result)
        return
    table(
        rows, (by, "requests", "input_tokens", "output_tokens", "cached_tokens", "cost"), title=f"usage since {since}"
    )


@requests_app.command("show")
def requests_show(request_id: str, json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """Show one request (by gateway id or the client's x-request-id) with its usage and cost."""
    row = admin(url, token).get(f"/requests/{request_id}")
    if row.get("cost_micro") is not None:
        row["cost"] = format_credits(row["cost_micro"])
    emit_json(row) if json_out else fields(row)
