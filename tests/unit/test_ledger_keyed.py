"""The ledger resists someone who can write the database file but has not the ledger key."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from server.billing.ledger import LedgerChain, load_or_create_key, open_chain
from server.store.sqlite import ledger
from server.store.sqlite.db import connect
from server.store.sqlite.migrations import migrate
from server.store.sqlite.store import prepare

KEY = b"k" * 32
CHAIN = LedgerChain(KEY)


def _ledger(path: Path, chain: LedgerChain = CHAIN, entries: int = 5) -> sqlite3.Connection:
    conn = connect(path, synchronous="NORMAL")
    migrate(conn)
    conn.execute("INSERT INTO projects (id, name, billing, created_ms) VALUES ('p1', 'p1', 'prepaid', 0)")
    for n in range(entries):
        conn.execute("BEGIN IMMEDIATE")
        ledger.append(conn, chain, "p1", "topup", f"src_{n}", 1000 * (n + 1), "top-up", 1_790_000_000_000 + n)
        conn.execute("COMMIT")
    return conn


def _ok(conn: sqlite3.Connection, chain: LedgerChain = CHAIN) -> bool:
    return all(r["ok"] for r in ledger.verify(conn, chain))


def test_insert_or_replace_cannot_rewrite_an_entry(tmp_path: Path) -> None:
    conn = _ledger(tmp_path / "l.db")
    row = conn.execute("SELECT * FROM ledger ORDER BY rowid LIMIT 1").fetchone()
    forged = list(row)
    forged[4] = 999_999_999  # amount_micro
    for verb in ("INSERT OR REPLACE", "REPLACE"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(f"{verb} INTO ledger VALUES ({', '.join('?' * len(forged))})", forged)
    assert _ok(conn)


def _recompute_unkeyed(conn: sqlite3.Connection) -> None:
    """What an attacker without the key can do: drop the triggers, change an amount, re-hash the chain
    with the scheme they can compute (SHA-256) and fix the project row."""
    conn.execute("DROP TRIGGER ledger_no_update")
    conn.execute("UPDATE ledger SET amount_micro = 1, balance_after_micro = 1 WHERE source_id = 'src_0'")
    attacker = LedgerChain(None)
    head, balance = "", 0
    for entry in [
        dict(zip([d[0] for d in conn.execute("SELECT * FROM ledger").description], r, strict=True))
        for r in conn.execute("SELECT * FROM ledger ORDER BY rowid")
    ]:
        balance += entry["amount_micro"]
        entry["balance_after_micro"], entry["prev_hash"] = balance, head
        head = attacker.hash(entry)
        conn.execute(
            "UPDATE ledger SET balance_after_micro = ?, prev_hash = ?, hash = ? WHERE id = ?",
            (balance, entry["prev_hash"], head, entry["id"]),
        )
    conn.execute("UPDATE projects SET balance_micro = ?, ledger_head = ? WHERE id = 'p1'", (balance, head))


def test_a_recomputed_chain_does_not_verify_without_the_key(tmp_path: Path) -> None:
    conn = _ledger(tmp_path / "l.db")
    _recompute_unkeyed(conn)
    assert _ok(conn, LedgerChain(None))  # self-consistent under the scheme the attacker could compute...
    assert not _ok(conn)  # ...but not under the installation's key


def test_a_ledger_from_before_keys_is_rekeyed_once_and_a_lost_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data" / "gateway.db"
    path.parent.mkdir()
    _ledger(path, LedgerChain(None)).close()  # written by a gateway that had no ledger key
    key_file = tmp_path / "ledger.key"
    chain, rekey_from = open_chain(key_file)
    assert rekey_from is not None and key_file.stat().st_mode & 0o777 == 0o600
    prepare(path, chain, rekey_from=rekey_from)
    with sqlite3.connect(path) as conn:
        assert _ok(conn, chain) and not _ok(conn, LedgerChain(None))
    key_file.unlink()  # the key is lost: a new one cannot adopt the keyed ledger
    chain, rekey_from = open_chain(key_file)
    with pytest.raises(ValueError, match="does not verify"):
        prepare(path, chain, rekey_from=rekey_from)


def test_signed_checkpoints_prove_the_history_up_to_them(tmp_path: Path) -> None:
    conn = _ledger(tmp_path / "l.db", entries=3)
    project: dict[str, Any] = ledger.projects(conn)[0]
    checkpoint = CHAIN.checkpoint(project, at_ms=1)
    for n in range(3, 6):  # the ledger goes on after the checkpoint
        conn.execute("BEGIN IMMEDIATE")
        ledger.append(conn, CHAIN, "p1", "usage", f"req_{n}", -10, "m", 1_790_000_100_000 + n)
        conn.execute("COMMIT")
    assert CHAIN.verify_checkpoint(checkpoint, ledger.entries(conn, "p1")) == []
    assert CHAIN.verify_checkpoint({**checkpoint, "balance_micro": 1}, ledger.entries(conn, "p1"))  # signature
    assert LedgerChain(b"x" * 32).verify_checkpoint(checkpoint, ledger.entries(conn, "p1"))  # another key
    # someone with the key rewrites history before the checkpoint: the checkpoint kept elsewhere catches it
    conn.execute("DROP TRIGGER ledger_no_update")
    conn.execute("DROP TRIGGER ledger_no_delete")
    conn.execute("DELETE FROM ledger WHERE source_id = 'src_1'")
    assert CHAIN.verify_checkpoint(checkpoint, ledger.entries(conn, "p1"))


def test_the_key_file_is_created_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "ledger.key"
    key, created = load_or_create_key(path)
    again, created_again = load_or_create_key(path)
    assert created and not created_again and key == again and len(key) == 32
    assert path.stat().st_mode & 0o777 == 0o600
