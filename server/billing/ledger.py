"""The ledger's rules, as pure functions: entry hashing and whole-ledger verification.

Every entry carries the hash of the previous entry of its project (a hash chain) and the
balance after it. Each project row keeps the chain head, the entry count and the balance,
moved in the same transaction as the entry, so verification detects an altered row, a deleted
row (even the last one) and a balance that drifted from the sum of entries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

KINDS = ("topup", "usage", "refund", "adjustment", "invoice_settlement")


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 over the fields that define an entry, chained to the previous hash."""
    parts = (
        entry["prev_hash"] or "",
        entry["id"],
        entry["project_id"],
        entry["kind"],
        entry["source_id"],
        str(entry["amount_micro"]),
        str(entry["balance_after_micro"]),
        str(entry["created_ms"]),
        entry.get("memo") or "",
    )
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


@dataclass
class ProjectCheck:
    project_id: str
    entries: int = 0
    sum_micro: int = 0
    balance_micro: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "entries": self.entries,
            "sum_micro": self.sum_micro,
            "balance_micro": self.balance_micro,
            "ok": self.ok,
            "problems": self.problems,
        }


def verify_project(project: dict[str, Any], entries: Iterable[dict[str, Any]]) -> ProjectCheck:
    """Check one project's chain, running balance, and head/count/balance against its row."""
    check = ProjectCheck(project["id"], balance_micro=project["balance_micro"])
    prev = ""
    for entry in entries:
        check.entries += 1
        check.sum_micro += entry["amount_micro"]
        where = f"entry {entry['id']}"
        if (entry["prev_hash"] or "") != prev:
            check.problems.append(f"{where}: chain broken (an entry before it was changed or removed)")
        if entry_hash(entry) != entry["hash"]:
            check.problems.append(f"{where}: contents do not match its hash (altered)")
        if entry["balance_after_micro"] != check.sum_micro:
            check.problems.append(
                f"{where}: balance_after {entry['balance_after_micro']} != running sum {check.sum_micro}"
            )
        prev = entry["hash"]
    if check.entries != project["ledger_entries"]:
        check.problems.append(f"{check.entries} entries found, {project['ledger_entries']} recorded (rows removed?)")
    if prev != (project["ledger_head"] or ""):
        check.problems.append("chain head does not match the last entry (rows removed or appended outside the gateway)")
    if check.sum_micro != project["balance_micro"]:
        check.problems.append(f"balance {project['balance_micro']} != sum of entries {check.sum_micro}")
    return check
