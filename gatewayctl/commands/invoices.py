"""gatewayctl invoices export: one CSV, JSON and PDF per project for a calendar month (cron-friendly)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gatewayctl.errors import CliError
from gatewayctl.options import Json, Token, Url, admin
from gatewayctl.output import emit_json, table
from server.billing.invoice_render import render_csv, render_json, render_pdf
from server.money import format_credits

app = typer.Typer(help="Monthly invoices.", no_args_is_help=True)

RENDERERS = {"csv": render_csv, "json": render_json, "pdf": render_pdf}


@app.command("export")
def export(
    month: Annotated[str, typer.Option("--month", help="Calendar month, e.g. 2026-10.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write <month>/<number>-<project>.{csv,json,pdf} into.")],
    project: Annotated[str | None, typer.Option("--project", help="Only this project.")] = None,
    push_stripe: Annotated[
        bool,
        typer.Option("--push-stripe", help="Also create the invoice in Stripe (postpaid projects with a customer)."),
    ] = False,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Write every project's invoice for the month; re-exporting a closed month gives identical files."""
    result = admin(url, token).post("/invoices/close", {"month": month, "push_stripe": push_stripe, "project": project})
    folder = out / month
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create {folder}: {exc.strerror}") from None
    written = []
    for invoice in result["invoices"]:
        stripe_id = invoice.pop("stripe_invoice_id", None)
        stem = f"{invoice['number']}-{invoice['project']['name']}"
        files = {}
        for suffix, render in RENDERERS.items():
            path = folder / f"{stem}.{suffix}"
            path.write_bytes(render(invoice))
            files[suffix] = str(path)
        written.append(
            {
                "number": invoice["number"],
                "project": invoice["project"]["name"],
                "total_micro": invoice["total_micro"],
                "total": format_credits(invoice["total_micro"]),
                "stripe_invoice_id": stripe_id,
                "files": files,
            }
        )
    if json_out:
        emit_json({"month": month, "invoices": written})
    else:
        table(written, ("number", "project", "total", "stripe_invoice_id"), title=f"invoices for {month} in {folder}")
