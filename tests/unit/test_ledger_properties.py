"""Property-based: any interleaving of top-ups, debits, refunds and adjustments keeps balance = sum of
entries and the hash chain valid; altering or deleting any row is detected."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.billing.ledger import LedgerChain
from server.store.sqlite import ledger
from server.store.sqlite.db import connect
from server.store.sqlite.migrations import migrate

CHAIN = LedgerChain(b"k" * 32)
KINDS = ("topup", "usage", "refund", "adjustment", "invoice_settlement")
SIGN = {"topup": 1, "usage": -1, "refund": -1, "adjustment": 1, "invoice_settlement": 1}

operations = st.lists(
    st.tuples(st.sampled_from(["p1", "p2"]), st.sampled_from(KINDS), st.integers(min_value=0, max_value=10**9)),
    min_size=1,
    max_size=40,
)


def _fresh() -> sqlite3.Connection:
    path = Path(tempfile.mkdtemp()) / "ledger.db"
    conn = connect(path, synchronous="NORMAL")
    migrate(conn)
    for project in ("p1", "p2"):
        conn.execute(
            "INSERT INTO projects (id, name, billing, created_ms) VALUES (?, ?, 'prepaid', 0)", (project, project)
        )
    return conn


def _apply(conn: sqlite3.Connection, ops: list[tuple[str, str, int]]) -> dict[str, int]:
    expected = {"p1": 0, "p2": 0}
    for n, (project, kind, amount) in enumerate(ops):
        signed = SIGN[kind] * amount if kind != "adjustment" else (amount if n % 2 else -amount)
        conn.execute("BEGIN IMMEDIATE")
        ledger.append(conn, CHAIN, project, kind, f"src_{n}", signed, f"op {n}", 1_790_000_000_000 + n)
        conn.execute("COMMIT")
        expected[project] += signed
    return expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_balance_equals_sum_and_chain_verifies(ops: list[tuple[str, str, int]]) -> None:
    conn = _fresh()
    expected = _apply(conn, ops)
    results = {r["project_id"]: r for r in ledger.verify(conn, CHAIN)}
    for project, total in expected.items():
        assert results[project]["ok"], results[project]["problems"]
        assert results[project]["balance_micro"] == results[project]["sum_micro"] == total


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations, st.integers(min_value=0), st.sampled_from(["amount", "memo", "delete", "balance"]))
def test_any_tampering_is_detected(ops: list[tuple[str, str, int]], pick: int, how: str) -> None:
    conn = _fresh()
    _apply(conn, ops)
    ids = [row[0] for row in conn.execute("SELECT id FROM ledger ORDER BY rowid")]
    victim = ids[pick % len(ids)]
    conn.execute("DROP TRIGGER ledger_no_update")  # an attacker with the database file
    conn.execute("DROP TRIGGER ledger_no_delete")
    if how == "amount":
        conn.execute("UPDATE ledger SET amount_micro = amount_micro + 1 WHERE id = ?", (victim,))
    elif how == "memo":
        conn.execute("UPDATE ledger SET memo = 'edited' WHERE id = ?", (victim,))
    elif how == "delete":
        conn.execute("DELETE FROM ledger WHERE id = ?", (victim,))
    else:
        conn.execute("UPDATE projects SET balance_micro = balance_micro + 1 WHERE id = 'p1'")
    assert not all(r["ok"] for r in ledger.verify(conn, CHAIN))


def test_the_ledger_refuses_updates_and_deletes() -> None:
    conn = _fresh()
    _apply(conn, [("p1", "topup", 5)])
    for statement in ("UPDATE ledger SET amount_micro = 0", "DELETE FROM ledger"):
        try:
            conn.execute(statement)
        except sqlite3.IntegrityError as exc:
            assert "append-only" in str(exc)
        else:
            raise AssertionError(f"{statement} was allowed")


def test_a_source_is_recorded_once() -> None:
    conn = _fresh()
    _apply(conn, [("p1", "topup", 5)])
    try:
        ledger.append(conn, CHAIN, "p1", "topup", "src_0", 5, "again", 0)
    except sqlite3.IntegrityError:
        pass
    else:
        raise AssertionError("a duplicate (kind, source) was accepted")
