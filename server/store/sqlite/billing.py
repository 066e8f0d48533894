"""SQL for Stripe top-ups, refunds, invoice settlement and invoice data; each Stripe event in one op.

Every op records the Stripe event id first-come in `stripe_events`, so a replayed delivery (same
event id) changes nothing, and credits are unique by (kind, source) in the ledger, so a different
event about the same Checkout Session cannot credit twice either.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from server.store.protocol import Refusal
from server.store.sqlite import ledger, records
from server.store.sqlite.catalog import rows

Result = tuple[str, dict[str, Any] | None]  # (outcome, the ledger entry written, if any)


def _once(event_id: str, event_type: str, when_ms: int, apply: Callable[[sqlite3.Connection], Result]) -> Any:
    """A Stripe event applied at most once: a known event id changes nothing; the outcome is remembered."""

    def op(conn: sqlite3.Connection) -> Result:
        if conn.execute("SELECT 1 FROM stripe_events WHERE id = ?", (event_id,)).fetchone() is not None:
            return "duplicate_event", None
        outcome, entry = apply(conn)
        conn.execute(
            "INSERT INTO stripe_events (id, event_type, received_ms, outcome) VALUES (?, ?, ?, ?)",
            (event_id, event_type, when_ms, outcome),
        )
        return outcome, entry

    return op


def insert_order(order: dict[str, Any]) -> Any:
    def op(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO topup_orders (id, project_id, session_id, amount_micro, currency, status, created_ms)"
            " VALUES (:id, :project_id, :session_id, :amount_micro, :currency, 'open', :created_ms)",
            order,
        )

    return op


def credit_topup(
    chain: ledger.Chain, refusal: Refusal, event_id: str, event_type: str, facts: dict[str, Any], when_ms: int
) -> Any:
    """Credit the ordered amount once for a paid session, unless `refusal` (billing's rule) says why not;
    returns (outcome, ledger entry or None)."""

    def apply(conn: sqlite3.Connection) -> Result:
        found = rows(conn, "SELECT * FROM topup_orders WHERE session_id = ?", (facts["session_id"],))
        order = found[0] if found else None
        why = refusal(order, facts)
        if why is not None or order is None:
            return why or "unknown_order", None
        entry = ledger.append(
            conn,
            chain,
            order["project_id"],
            "topup",
            facts["session_id"],
            order["amount_micro"],
            "Stripe top-up",
            when_ms,
        )
        conn.execute(
            "UPDATE topup_orders SET status = 'credited', payment_intent = ?, credited_ms = ? WHERE id = ?",
            (facts["payment_intent"], when_ms, order["id"]),
        )
        payload = {
            "project_id": order["project_id"],
            "amount_micro": order["amount_micro"],
            "source": "stripe",
            "session_id": facts["session_id"],
        }
        event = f"evt_recharged_{facts['session_id']}"
        records.insert_event(conn, event, "wallet.recharged", order["project_id"], payload, when_ms)
        return "credited", entry

    return _once(event_id, event_type, when_ms, apply)


def refund(
    chain: ledger.Chain,
    event_id: str,
    event_type: str,
    charge_id: str,
    payment_intent: str | None,
    refunded_micro: int,
    when_ms: int,
) -> Any:
    """A refund entry for what was refunded beyond the refunds already recorded for this charge."""

    def apply(conn: sqlite3.Connection) -> Result:
        order = conn.execute(
            "SELECT project_id FROM topup_orders WHERE payment_intent = ? AND status = 'credited'", (payment_intent,)
        ).fetchone()
        if order is None:
            return "unknown_payment", None
        already = conn.execute(
            "SELECT COALESCE(SUM(-amount_micro), 0) FROM ledger WHERE kind = 'refund' AND source_id LIKE ?",
            (f"{charge_id}:%",),
        ).fetchone()[0]
        delta = refunded_micro - already
        if delta <= 0:
            return "nothing_new", None
        entry = ledger.append(
            conn, chain, order[0], "refund", f"{charge_id}:{refunded_micro}", -delta, "Stripe refund", when_ms
        )
        return "refunded", entry

    return _once(event_id, event_type, when_ms, apply)


def settle_invoice(chain: ledger.Chain, event_id: str, event_type: str, stripe_invoice_id: str, when_ms: int) -> Any:
    """Mark our invoice paid and credit its total back to the project's balance (postpaid settlement)."""

    def apply(conn: sqlite3.Connection) -> Result:
        found = rows(conn, "SELECT * FROM invoices WHERE stripe_invoice_id = ?", (stripe_invoice_id,))
        if not found:
            return "unknown_invoice", None
        invoice = found[0]
        if invoice["status"] == "paid":
            return "already_paid", None
        conn.execute("UPDATE invoices SET status = 'paid', paid_ms = ? WHERE id = ?", (when_ms, invoice["id"]))
        usage_paid = invoice["subtotal_micro"] if invoice["subtotal_micro"] is not None else invoice["total_micro"]
        entry = ledger.append(  # the usage it pays for; tax collected is not the project's money
            conn,
            chain,
            invoice["project_id"],
            "invoice_settlement",
            invoice["number"],
            usage_paid,
            "Invoice paid",
            when_ms,
        )
        payload = {
            "project_id": invoice["project_id"],
            "number": invoice["number"],
            "total_micro": invoice["total_micro"],
        }
        event = f"evt_invoice_paid_{invoice['number']}"
        records.insert_event(conn, event, "invoice.paid", invoice["project_id"], payload, when_ms)
        return "paid", entry

    return _once(event_id, event_type, when_ms, apply)


def ignore_event(event_id: str, event_type: str, when_ms: int) -> Any:
    return _once(event_id, event_type, when_ms, lambda conn: ("ignored", None))


def invoice_data(conn: sqlite3.Connection, project_id: str, start_ms: int, end_ms: int) -> dict[str, Any]:
    """Line items by model (from usage, with the quantities beyond tokens by unit), the month's usage debits
    and other entries (from the ledger)."""
    lines = rows(
        conn,
        "SELECT model, COUNT(*) AS requests, SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens,"
        " SUM(cost_micro) AS amount_micro FROM usage WHERE project_id = ? AND created_ms >= ? AND created_ms < ?"
        " GROUP BY model ORDER BY model",
        (project_id, start_ms, end_ms),
    )
    units = conn.execute(
        "SELECT u.model, q.key, SUM(q.value) FROM usage u, json_each(u.quantities) q WHERE u.project_id = ?"
        " AND u.created_ms >= ? AND u.created_ms < ? AND u.quantities IS NOT NULL GROUP BY u.model, q.key"
        " ORDER BY u.model, q.key",
        (project_id, start_ms, end_ms),
    ).fetchall()
    for line in lines:
        line["units"] = {unit: int(total) for model, unit, total in units if model == line["model"]}
    debits = conn.execute(
        "SELECT COALESCE(SUM(-amount_micro), 0) FROM ledger WHERE project_id = ? AND kind = 'usage'"
        " AND created_ms >= ? AND created_ms < ?",
        (project_id, start_ms, end_ms),
    ).fetchone()[0]
    credits = rows(
        conn,
        "SELECT kind, source_id, created_ms AS at_ms, amount_micro, memo FROM ledger WHERE project_id = ?"
        " AND kind != 'usage' AND created_ms >= ? AND created_ms < ? ORDER BY rowid",
        (project_id, start_ms, end_ms),
    )
    return {"lines": lines, "debits_micro": debits, "credits": credits}


def projects_with_entries(conn: sqlite3.Connection, start_ms: int, end_ms: int) -> list[str]:
    found = conn.execute(
        "SELECT DISTINCT project_id FROM ledger WHERE created_ms >= ? AND created_ms < ? ORDER BY project_id",
        (start_ms, end_ms),
    )
    return [row[0] for row in found]


def next_number(conn: sqlite3.Connection, name: str = "invoice") -> int:
    """Move the named counter by one inside the caller's transaction and return the new value.

    The counter row is written before anything else is decided, so two writers numbering at once
    serialize on it (SQLite's write lock; a row lock elsewhere): each gets its own value, and a
    rolled-back transaction gives its value back. The unique index on invoices.seq backs it up."""
    found = conn.execute("UPDATE counters SET value = value + 1 WHERE name = ? RETURNING value", (name,)).fetchone()
    if found is None:
        conn.execute("INSERT INTO counters (name, value) VALUES (?, 1)", (name,))
        return 1
    return int(found[0])


def _invoice_row(found: dict[str, Any]) -> dict[str, Any]:
    found["frozen"] = json.loads(found["frozen"]) if found.get("frozen") else None
    return found


def ensure_invoice(
    project_id: str, month: str, subtotal_micro: int, tax_micro: int, prefix: str, frozen: dict[str, Any], when_ms: int
) -> Any:
    """The project's invoice for a closed month: numbered once (sequential per installation, from the
    counter), with its totals and terms frozen; an invoice already numbered is returned unchanged."""

    def op(conn: sqlite3.Connection) -> dict[str, Any]:
        found = rows(conn, "SELECT * FROM invoices WHERE project_id = ? AND month = ?", (project_id, month))
        if found:
            return _invoice_row(found[0])
        seq = next_number(conn)
        invoice = {
            "id": f"inv_{seq:06d}",
            "seq": seq,
            "number": f"{prefix}{seq:06d}",
            "project_id": project_id,
            "month": month,
            "subtotal_micro": subtotal_micro,
            "tax_micro": tax_micro,
            "total_micro": subtotal_micro + tax_micro,
            "status": "open",
            "stripe_invoice_id": None,
            "created_ms": when_ms,
            "paid_ms": None,
            "frozen": json.dumps(frozen, sort_keys=True),
        }
        conn.execute(
            "INSERT INTO invoices (id, seq, number, project_id, month, subtotal_micro, tax_micro, total_micro, status,"
            " stripe_invoice_id, created_ms, paid_ms, frozen) VALUES (:id, :seq, :number, :project_id, :month,"
            " :subtotal_micro, :tax_micro, :total_micro, :status, :stripe_invoice_id, :created_ms, :paid_ms, :frozen)",
            invoice,
        )
        return _invoice_row(invoice)

    return op


def set_stripe_invoice(invoice_id: str, stripe_invoice_id: str) -> Any:
    def op(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE invoices SET stripe_invoice_id = ? WHERE id = ?", (stripe_invoice_id, invoice_id))

    return op
