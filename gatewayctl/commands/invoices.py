"""gatewayctl invoices export: one CSV, JSON and PDF per project for a calendar month (cron-friendly).

The server numbers and freezes a month's invoices once the month has ended (in the billing time
zone); a month still running exports drafts: no number, DRAFT on every page, files named
DRAFT-<project>.*, replaced by the numbered files once the month is closed and exported again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from gatewayctl import humanize
from gatewayctl.errors import CliError
from gatewayctl.options import Json, OptionalProject, Token, Url, admin, group
from gatewayctl.output import emit_json, note, table
from gatewayctl.table import Column

app = group("Monthly invoices.")
SUFFIXES = ("csv", "json", "pdf")


def _write(folder: Path, invoice: dict[str, Any]) -> dict[str, str]:
    """The three files of one invoice; a numbered invoice replaces the project's draft files."""
    from server.billing.invoice_render import render_csv, render_json, render_pdf

    renderers = {"csv": render_csv, "json": render_json, "pdf": render_pdf}
    project = invoice["project"]["name"]
    stem = f"{invoice['number']}-{project}" if invoice.get("number") else f"DRAFT-{project}"
    files = {}
    for suffix in SUFFIXES:
        path = folder / f"{stem}.{suffix}"
        path.write_bytes(renderers[suffix](invoice))
        files[suffix] = str(path)
    if invoice.get("number"):
        for suffix in SUFFIXES:
            (folder / f"DRAFT-{project}.{suffix}").unlink(missing_ok=True)
    return files


@app.command("export")
def export(
    month: Annotated[
        str, typer.Option("--month", help="Calendar month, e.g. 2026-10, or 'last' (the last ended month).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder to write <month>/<number>-<project>.{csv,json,pdf} into.")],
    project: OptionalProject = None,
    push_stripe: Annotated[
        bool,
        typer.Option("--push-stripe", help="Also create the invoice in Stripe (postpaid projects with a customer)."),
    ] = False,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Export a month's invoices.

    One CSV, JSON and PDF per project; re-exporting an ended month gives identical files.
    """
    from server.money import format_credits

    client = admin(url, token)
    result = client.post("/invoices/close", {"month": month, "push_stripe": push_stripe, "project": project})
    folder = out / result["month"]
    written = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for invoice in result["invoices"]:
            stripe_id = invoice.pop("stripe_invoice_id", None)
            written.append(
                {
                    "number": invoice.get("number"),
                    "status": invoice["status"],
                    "project": invoice["project"]["name"],
                    "total_micro": invoice["total_micro"],
                    "total": format_credits(invoice["total_micro"]),
                    "currency": invoice["currency"],
                    "stripe_invoice_id": stripe_id,
                    "files": _write(folder, invoice),
                }
            )
        checkpoints = result.get("ledger_checkpoints")
        if checkpoints:  # signed proof of each project's ledger at the month's end, kept beside the invoices
            path = folder / "ledger-checkpoints.json"
            path.write_text(json.dumps({"month": result["month"], "checkpoints": checkpoints}, indent=2) + "\n")
    except OSError as exc:
        raise CliError(f"cannot write invoices into {folder}: {exc.strerror or exc}") from None
    if json_out:
        emit_json({"month": result["month"], "closed": result["closed"], "folder": str(folder), "invoices": written})
        return
    if not result["closed"]:
        note(f"{result['month']} has not ended: these are drafts (no number, totals still move)")
    totals = humanize.money_column([w["total_micro"] for w in written], client.currency)
    rows = [
        {**w, "number": w["number"] or "DRAFT", "total": t, "stripe": w["stripe_invoice_id"] or ""}
        for w, t in zip(written, totals, strict=True)
    ]
    note(f"{len(written)} invoice(s) for {result['month']} in {folder}")
    columns = [
        Column("number", "NUMBER"),
        Column("project", "PROJECT"),
        Column("status", "STATUS"),
        Column("total", "TOTAL", align="right"),
        Column("stripe", "STRIPE", elide=True),
    ]
    table(columns, rows, empty=f"no project has ledger entries in {result['month']}")
