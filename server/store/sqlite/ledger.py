"""SQL for the append-only ledger: append an entry (inside the caller's transaction) and read it back."""

from __future__ import annotations

import secrets
import sqlite3
from typing import Any

from server.billing.ledger import entry_hash, verify_project
from server.store.sqlite.catalog import rows


def append(
    conn: sqlite3.Connection, project_id: str, kind: str, source_id: str, amount_micro: int, memo: str, created_ms: int
) -> dict[str, Any]:
    """Append one entry and move the project's balance and chain head; unique by (kind, source_id)."""
    found = conn.execute("SELECT balance_micro, ledger_head FROM projects WHERE id = ?", (project_id,)).fetchone()
    if found is None:
        raise LookupError(f"no project {project_id}")
    balance, head = found
    entry: dict[str, Any] = {
        "id": f"led_{secrets.token_hex(8)}",
        "project_id": project_id,
        "kind": kind,
        "source_id": source_id,
        "amount_micro": amount_micro,
        "balance_after_micro": balance + amount_micro,
        "memo": memo,
        "created_ms": created_ms,
        "prev_hash": head,
    }
    entry["hash"] = entry_hash(entry)
    conn.execute(
        "INSERT INTO ledger (id, project_id, kind, source_id, amount_micro, balance_after_micro, memo, created_ms,"
        " prev_hash, hash) VALUES (:id, :project_id, :kind, :source_id, :amount_micro, :balance_after_micro, :memo,"
        " :created_ms, :prev_hash, :hash)",
        entry,
    )
    conn.execute(
        "UPDATE projects SET balance_micro = ?, ledger_entries = ledger_entries + 1, ledger_head = ? WHERE id = ?",
        (entry["balance_after_micro"], entry["hash"], project_id),
    )
    return entry


def find(conn: sqlite3.Connection, kind: str, source_id: str) -> dict[str, Any] | None:
    """The entry recorded under (kind, source_id), if any (the pair is unique)."""
    found = rows(conn, "SELECT * FROM ledger WHERE kind = ? AND source_id = ?", (kind, source_id))
    return found[0] if found else None


def history(conn: sqlite3.Connection, project_id: str, limit: int) -> list[dict[str, Any]]:
    return rows(
        conn,
        "SELECT id, kind, source_id, amount_micro, balance_after_micro, memo, created_ms FROM ledger"
        " WHERE project_id = ? ORDER BY rowid DESC LIMIT ?",
        (project_id, limit),
    )


def verify(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every project's chain checked in insertion order (rowid), against its project row."""
    results = []
    for project in rows(conn, "SELECT id, balance_micro, ledger_entries, ledger_head FROM projects ORDER BY id"):
        entries = rows(conn, "SELECT * FROM ledger WHERE project_id = ? ORDER BY rowid", (project["id"],))
        results.append(verify_project(project, entries).as_dict())
    return results
