"""gatewayctl wallet balance|credit|history|topup, ledger verify|checkpoint."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from gatewayctl import humanize
from gatewayctl.errors import CliError
from gatewayctl.options import Ids, Json, Project, Token, Url, admin, amount, group
from gatewayctl.output import emit_json, fields, note, say, table
from gatewayctl.table import Column

wallet_app = group("Project wallets: balance, credits, history, top-ups.")
ledger_app = group("The append-only ledger.")


@wallet_app.command("balance")
def wallet_balance(project: Project, json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """Show a project's balance.

    The sum of its ledger entries, what requests in flight reserve, and the month's spend.
    """
    client = admin(url, token)
    result = client.get(f"/wallet/{project}")
    if json_out:
        emit_json(result)
        return
    cur = client.currency
    fields(
        [
            ("project", result.get("project_name") or result["project"]),
            ("balance", f"{humanize.money(result['balance_micro'], cur)} ({result['billing']})"),
            ("reserved by requests in flight", humanize.money(result["reserved_micro"], cur)),
            (f"spent in {result['month']}", humanize.money(result["month_spend_micro"], cur)),
        ]
    )


@wallet_app.command("credit")
def wallet_credit(
    project: Project,
    amount_micro: Annotated[
        int,
        typer.Option(
            "--amount",
            parser=amount(negative=True, zero=False),
            metavar="AMOUNT",
            help="Currency units; negative debits.",
        ),
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the ledger).")],
    adjustment_id: Annotated[
        str | None, typer.Option("--id", help="Idempotency id: a retry with the same id and amount changes nothing.")
    ] = None,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Credit (or debit) a project's wallet.

    An operator adjustment, kept in the ledger with its reason; idempotent with --id.
    """
    from server.money import format_credits

    body = {"amount": format_credits(amount_micro), "reason": reason, "id": adjustment_id}
    client = admin(url, token)
    entry = client.post(f"/wallet/{project}/credit", body)
    if json_out:
        emit_json(entry)
        return
    cur = client.currency
    done = "already recorded" if entry.get("replayed") else "recorded"
    say(
        f"{done}: {humanize.money(entry['amount_micro'], cur)} to {entry.get('project_name') or project},"
        f" balance {humanize.money(entry['balance_after_micro'], cur)} (entry {entry['source_id']})"
    )


@wallet_app.command("history")
def wallet_history(
    project: Project,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Most recent entries to show.")] = 50,
    ids: Ids = False,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """The project's ledger entries, newest first."""
    client = admin(url, token)
    data = client.get(f"/wallet/{project}/history", limit=limit)["data"]
    if json_out:
        emit_json(data)
        return
    amounts = humanize.money_column([e["amount_micro"] for e in data], client.currency)
    balances = humanize.money_column([e["balance_after_micro"] for e in data], client.currency)
    rows = [
        {
            "id": e["id"],
            "when": humanize.relative(e["created_ms"]),
            "kind": e["kind"],
            "amount": a,
            "balance": b,
            "source": e["source_id"],
            "memo": e.get("memo") or "",
        }
        for e, a, b in zip(data, amounts, balances, strict=True)
    ]
    columns = [
        *([Column("id", "ID")] if ids else []),
        Column("when", "WHEN"),
        Column("kind", "KIND"),
        Column("amount", "AMOUNT", align="right"),
        Column("balance", "BALANCE", align="right"),
        Column("memo", "MEMO", elide=True),
        Column("source", "SOURCE", elide=True),
    ]
    table(columns, rows, empty="no ledger entries yet")


@wallet_app.command("topup")
def wallet_topup(
    project: Project,
    amount_micro: Annotated[
        int, typer.Option("--amount", parser=amount(zero=False), metavar="AMOUNT", help="Currency units to add.")
    ],
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Open a Stripe Checkout for a top-up.

    Prints the Checkout URL; the wallet is credited when Stripe confirms the payment.
    """
    from server.money import format_credits

    result = admin(url, token).post(f"/wallet/{project}/topup", {"amount": format_credits(amount_micro)})
    if json_out:
        emit_json(result)
        return
    say(result["url"])
    note(f"order {result['order_id']}: the wallet is credited once Stripe confirms the payment")


@ledger_app.command("verify")
def ledger_verify(
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint",
            help="A signed checkpoint file (`ledger checkpoint`, or an invoice export) the history must match.",
        ),
    ] = None,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Verify the ledger.

    Proves every balance equals the sum of its entries and no entry was altered or removed (the chain is
    keyed: without the ledger key it cannot be recomputed); with --checkpoint, also that the history up
    to each signed checkpoint kept outside the database was not rewritten.
    """
    client = admin(url, token)
    if checkpoint:
        result = client.post("/ledger/verify", {"checkpoints": [c for path in checkpoint for c in _checkpoints(path)]})
    else:
        result = client.get("/ledger/verify")
    problems = result.get("checkpoint_problems") or []
    if json_out:
        emit_json(result)  # the answer says ok: false; no second JSON document for the exit code
        if not result["ok"]:
            sys.stderr.write("error: ledger verification failed\n")
            raise typer.Exit(1)
        return
    for project in result["projects"]:
        status = "ok" if project["ok"] else "FAILED"
        balance = humanize.money(project["balance_micro"], client.currency)
        name = project.get("project_name") or project["project_id"]
        say(f"{name}: {status}, {project['entries']:,} entries, balance {balance}")
        for problem in project["problems"]:
            say(f"  - {problem}")
    if checkpoint:
        say(f"checkpoints: {result.get('checkpoints', 0)} checked, {'ok' if not problems else 'FAILED'}")
        for problem in problems:
            say(f"  - {problem}")
    if not result["ok"]:
        raise CliError("ledger verification failed", code="ledger_verification_failed")


def _checkpoints(path: Path) -> list[dict[str, object]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read checkpoint file {path}: {exc}") from None
    found = data.get("checkpoints") if isinstance(data, dict) else data
    if not isinstance(found, list) or not all(isinstance(c, dict) for c in found):
        raise CliError(f"{path} holds no checkpoints (expected the file `ledger checkpoint` writes)")
    return found


@ledger_app.command("checkpoint")
def ledger_checkpoint(
    out: Annotated[Path, typer.Option("--out", help="The file to write the signed checkpoints to.")],
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Write signed checkpoints of every project's ledger.

    Each is the project's entry count, balance and chain head now, signed with the ledger key. Keep the file
    outside the server (with backups or invoices); `ledger verify --checkpoint FILE` proves later that the
    history up to it was not rewritten. `invoices export` writes one for each ended month.
    """
    result = admin(url, token).get("/ledger/checkpoints")
    try:
        out.write_text(json.dumps(result, indent=2) + "\n")
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror or exc}") from None
    if json_out:
        emit_json({"file": str(out), "checkpoints": len(result["checkpoints"])})
        return
    note(f"{len(result['checkpoints'])} checkpoint(s) written to {out}")
