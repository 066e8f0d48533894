"""The ledger's rules, as pure functions: the keyed hash chain, verification and signed checkpoints.

Every entry carries the hash of the previous entry of its project (a chain) and the balance after it.
Each project row keeps the chain head, the entry count and the balance, moved in the same transaction
as the entry, so verification detects an altered row, a deleted row (even the last one) and a balance
that drifted from the sum of entries.

The chain is keyed: each hash is an HMAC-SHA256 with the installation's ledger key, which lives outside
the database (a file next to config.toml, created by `gatewayctl init`, mode 0600). Someone who can write
the database but has not the key cannot recompute a chain that verifies. A signed checkpoint (a project's
entry count, balance and head, HMAC-signed) exported with each invoice and kept elsewhere lets `ledger
verify --checkpoint` prove that the history up to it was not rewritten, even by someone with the key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("topup", "usage", "refund", "adjustment", "invoice_settlement")
KEY_BYTES = 32


def _message(entry: dict[str, Any]) -> bytes:
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
    return "\x1f".join(parts).encode()


class LedgerChain:
    """Hashes entries into per-project chains: HMAC-SHA256 with `key`; plain SHA-256 without one (the
    scheme before keyed chains, used only to check a ledger before it is re-keyed)."""

    def __init__(self, key: bytes | None) -> None:
        self._key = key

    def derive(self, purpose: bytes) -> bytes:
        """A key for another purpose (signed file URLs), derived from the ledger key so it lives outside the
        database too; an unkeyed chain derives from nothing secret and is used only before re-keying."""
        return hmac.new(self._key or b"", purpose, hashlib.sha256).digest()

    def hash(self, entry: dict[str, Any]) -> str:
        message = _message(entry)
        if self._key is None:
            return hashlib.sha256(message).hexdigest()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def verify_project(self, project: dict[str, Any], entries: Iterable[dict[str, Any]]) -> ProjectCheck:
        """Check one project's chain, running balance, and head/count/balance against its row."""
        check = ProjectCheck(project["id"], balance_micro=project["balance_micro"])
        prev = ""
        for entry in entries:
            check.entries += 1
            check.sum_micro += entry["amount_micro"]
            where = f"entry {entry['id']}"
            if (entry["prev_hash"] or "") != prev:
                check.problems.append(f"{where}: chain broken (an entry before it was changed or removed)")
            if not hmac.compare_digest(self.hash(entry), entry["hash"] or ""):
                check.problems.append(f"{where}: contents do not match its hash (altered)")
            if entry["balance_after_micro"] != check.sum_micro:
                check.problems.append(
                    f"{where}: balance_after {entry['balance_after_micro']} != running sum {check.sum_micro}"
                )
            prev = entry["hash"]
        if check.entries != project["ledger_entries"]:
            check.problems.append(
                f"{check.entries} entries found, {project['ledger_entries']} recorded (rows removed?)"
            )
        if prev != (project["ledger_head"] or ""):
            check.problems.append(
                "chain head does not match the last entry (rows removed or appended outside the gateway)"
            )
        if check.sum_micro != project["balance_micro"]:
            check.problems.append(f"balance {project['balance_micro']} != sum of entries {check.sum_micro}")
        return check

    def fingerprint(self) -> str:
        """A short public name for the key (it reveals nothing of it), to match a backup with its key file."""
        if self._key is None:
            return "unkeyed"
        return hashlib.sha256(b"gateway-ledger-key\x1f" + self._key).hexdigest()[:16]

    def sign(self, fields: dict[str, Any]) -> str:
        if self._key is None:
            raise ValueError("checkpoints are signed with the ledger key")
        message = "\x1f".join(f"{name}={fields[name]}" for name in sorted(fields)).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def checkpoint(self, project: dict[str, Any], at_ms: int) -> dict[str, Any]:
        """A signed statement of a project's ledger as it stands: entry count, balance and chain head."""
        fields = {
            "project_id": project["id"],
            "entries": project["ledger_entries"],
            "balance_micro": project["balance_micro"],
            "head": project["ledger_head"] or "",
            "at_ms": at_ms,
        }
        return {**fields, "signature": self.sign(fields)}

    def verify_checkpoint(self, checkpoint: dict[str, Any], entries: list[dict[str, Any]]) -> list[str]:
        """Problems with the ledger's history up to a checkpoint (empty: it still holds exactly that prefix)."""
        fields = {name: checkpoint.get(name) for name in ("project_id", "entries", "balance_micro", "head", "at_ms")}
        if not hmac.compare_digest(self.sign(fields), str(checkpoint.get("signature") or "")):
            return [f"checkpoint for {fields['project_id']}: signature does not match (not signed with this key)"]
        count = fields["entries"]
        if not isinstance(count, int) or count < 0 or len(entries) < count:
            return [f"checkpoint for {fields['project_id']}: {count} entries promised, {len(entries)} found"]
        if count == 0:
            return []
        last = entries[count - 1]
        problems = []
        if last["hash"] != fields["head"]:
            problems.append(f"checkpoint for {fields['project_id']}: entry {count} is not the checkpointed head")
        if last["balance_after_micro"] != fields["balance_micro"]:
            problems.append(f"checkpoint for {fields['project_id']}: balance at entry {count} differs")
        return problems


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


def load_or_create_key(path: Path) -> tuple[bytes, bool]:
    """The installation's ledger key (hex in a 0600 file), created if absent; (key, created now)."""
    if path.is_file():
        text = path.read_text().strip()
        try:
            key = bytes.fromhex(text)
        except ValueError:
            raise ValueError(f"ledger key file {path} is not hex") from None
        if len(key) < 16:
            raise ValueError(f"ledger key file {path} is too short")
        return key, False
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never overwrite; never readable by others
    with os.fdopen(fd, "w") as out:
        out.write(key.hex() + "\n")
    return key, True


def open_chain(key_path: Path) -> tuple[LedgerChain, LedgerChain | None]:
    """The installation's keyed chain, and the unkeyed one when the key was created just now (a ledger
    written before keys existed is then checked with it and re-keyed once)."""
    key, created = load_or_create_key(key_path)
    return LedgerChain(key), (LedgerChain(None) if created else None)
