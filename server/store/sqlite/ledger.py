"""SQL for the append-only ledger: append an entry (inside the caller's transaction), read it back, verify it,
and re-key a ledger written before chains were keyed. The chain's rules come in as a `LedgerChain`."""

from __future__ import annotations

import secrets
import sqlite3
from typing import Any, Protocol

from server.store.sqlite.catalog import rows


class Chain(Protocol):
    """The ledger's rules the store applies (server.billing.ledger.LedgerChain)."""

    def hash(self, entry: dict[str, Any]) -> str: ...

    def verify_project(self, project: dict[str, Any], entries: list[dict[str, Any]]) -> Any: ...


def append(
    conn: sqlite3.Connection,
    chain: Chain,
    project_id: str,
    kind: str,
    source_id: str,
    amount_micro: int,
    memo: str,
    created_ms: int,
) -> dict[str, Any]:
    """Append one entry and move the project's balance and chain head; unique by (kind, source_id). The
    project's row is read `FOR UPDATE` on PostgreSQL (a comment SQLite ignores: its one writer serialises)."""
    found = conn.execute(  # the row lock serialises a project's chain across processes (PostgreSQL)
        "SELECT balance_micro, ledger_head FROM projects WHERE id = ? /* for update */", (project_id,)
    ).fetchone()
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
    entry["hash"] = chain.hash(entry)
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


def entries(conn: sqlite3.Connection, project_id: str) -> list[dict[str, Any]]:
    """A project's entries in insertion order (rowid)."""
    return rows(conn, "SELECT * FROM ledger WHERE project_id = ? ORDER BY rowid", (project_id,))


def projects(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return rows(conn, "SELECT id, balance_micro, ledger_entries, ledger_head FROM projects ORDER BY id")


def verify(conn: sqlite3.Connection, chain: Chain) -> list[dict[str, Any]]:
    """Every project's chain checked in insertion order, against its project row."""
    return [chain.verify_project(project, entries(conn, project["id"])).as_dict() for project in projects(conn)]


def state_at(conn: sqlite3.Connection, project_id: str, at_ms: int) -> dict[str, Any]:
    """A project's ledger as it stood at `at_ms`: entries before it (in insertion order), balance and head."""
    found = entries(conn, project_id)
    count = 0
    for position, entry in enumerate(found, start=1):
        if entry["created_ms"] < at_ms:
            count = position
    last = found[count - 1] if count else None
    return {
        "id": project_id,
        "ledger_entries": count,
        "balance_micro": last["balance_after_micro"] if last else 0,
        "ledger_head": last["hash"] if last else "",
    }


def rekey(conn: sqlite3.Connection, old: Chain, new: Chain) -> int:
    """Re-hash every entry with a new chain (inside the caller's transaction), after checking it with the
    old one; a ledger that does not verify is refused. Returns how many entries were re-hashed."""
    broken = [r for r in verify(conn, old) if not r["ok"]]
    if broken:
        raise ValueError(f"the ledger does not verify; not re-keyed: {broken[0]['problems'][0]}")
    conn.execute("DROP TRIGGER IF EXISTS ledger_no_update")
    total = 0
    for project in projects(conn):
        head = ""
        for entry in entries(conn, project["id"]):
            entry["prev_hash"] = head
            head = new.hash(entry)
            conn.execute(
                "UPDATE ledger SET prev_hash = ?, hash = ? WHERE id = ?", (entry["prev_hash"], head, entry["id"])
            )
            total += 1
        conn.execute("UPDATE projects SET ledger_head = ? WHERE id = ?", (head, project["id"]))
    conn.execute(
        "CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger"
        " BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END"
    )
    return total
