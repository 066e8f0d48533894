"""What the server asks of its storage, as typed records: the request path's writes and what start-up loads.

The SQLite store implements these; billing, admission and the API build these records and never see SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from server.types import Call, Caller, Outcome, Usage

HOLD_REQUEST, HOLD_JOB, HOLD_SESSION = "request", "job", "session"


class StoreUnavailable(Exception):
    """The store cannot take writes now (locked by another process, out of disk space, failing I/O)."""


@dataclass(slots=True, frozen=True)
class Event:
    """An outbox event, written in the transaction of the fact it announces; unique by id."""

    id: str
    type: str
    project_id: str | None
    payload: Mapping[str, Any]
    created_ms: int


@dataclass(slots=True, frozen=True)
class HoldRecord:
    """A reservation as stored: what it holds, for whom, and the price card a crash-time charge uses."""

    id: str
    project_id: str
    key_id: str
    micro: int
    wallet: bool
    price_card: Mapping[str, Any]
    kind: str = HOLD_REQUEST
    expires_ms: int | None = None


@dataclass(slots=True, frozen=True)
class Intent:
    """Written before a request is forwarded: the request row (status pending) and its hold."""

    caller: Caller
    call: Call
    hold: HoldRecord


@dataclass(slots=True, frozen=True)
class Closing:
    """Written when a request ends, in one transaction: its outcome, its usage row and ledger debit (when it
    has usage), the resolution of its hold (settled or released), and the events the facts announce."""

    caller: Caller
    call: Call
    outcome: Outcome
    hold_id: str
    hold_status: str  # "settled" | "released"
    events: tuple[Event, ...] = ()
    intent: Intent | None = None  # written first when the intent's own write failed


@dataclass(slots=True, frozen=True)
class Interrupted:
    """A request a crash left pending: what its intent and its last checkpoint prove."""

    request_id: str
    project_id: str
    key_id: str
    model: str
    stream: bool
    body_bytes: int
    delivered_chars: int | None
    hold_id: str | None
    price_card: Mapping[str, Any]


@dataclass(slots=True, frozen=True)
class Recovery:
    """How start-up closes one interrupted request: billed (usage + debit, hold settled) or not (hold released)."""

    request: Interrupted
    usage: Usage | None
    charge_micro: int
    ended_ms: int


@dataclass(slots=True)
class Loaded:
    """What the store hands the server at start-up."""

    projects: list[dict[str, Any]] = field(default_factory=list)
    keys: list[dict[str, Any]] = field(default_factory=list)
    admin_hashes: set[str] = field(default_factory=set)
    balances: dict[str, int] = field(default_factory=dict)
    spend_project: dict[str, int] = field(default_factory=dict)
    spend_key: dict[str, int] = field(default_factory=dict)
    open_holds: list[HoldRecord] = field(default_factory=list)
    interrupted: list[Interrupted] = field(default_factory=list)
