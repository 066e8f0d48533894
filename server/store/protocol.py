"""What the server asks of its storage, as typed records: the request path's writes and what start-up loads.

The SQLite store implements these; billing, admission and the API build these records and never see SQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from server.types import Call, Caller, Outcome, Usage

if TYPE_CHECKING:
    from server.store.media_protocol import JobEnd, MediaStore
    from server.store.webhook_protocol import WebhookStore

HOLD_REQUEST, HOLD_JOB, HOLD_SESSION = "request", "job", "session"


@dataclass(slots=True)
class Committed:
    """The store's side of a reconciliation round."""

    closed: set[str] = field(default_factory=set)  # of the ids asked: requests no longer pending
    spent_project: dict[str, int] = field(default_factory=dict)  # every project (0 without usage)
    spent_key: dict[str, int] = field(default_factory=dict)  # every key (0 without usage)
    balances: dict[str, int] = field(default_factory=dict)  # every project


Refusal = Callable[[dict[str, Any] | None, dict[str, Any]], str | None]  # (order, facts) -> why not to credit
StripeResult = tuple[str, dict[str, Any] | None]  # (what happened, the ledger entry written, if any)


class StoreUnavailable(Exception):
    """The store cannot take writes now (locked by another process, out of disk space, failing I/O)."""


class BackupRefused(Exception):
    """A backup cannot be taken now (no room for the copy); the message says why."""


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
    """Written before a request is forwarded: the request row (status pending) and its hold (a realtime
    session's own row holds nothing: each of its responses is a request with its own hold)."""

    caller: Caller
    call: Call
    hold: HoldRecord | None


@dataclass(slots=True, frozen=True)
class IdempotencyRecord:
    """The first successful answer to a POST with an Idempotency-Key: replayed for the same key and body."""

    project_id: str
    key: str
    body_sha256: str
    request_id: str
    status: int
    headers: Mapping[str, str]
    stream: bool
    body: bytes  # the JSON answer, or the stream's frames as sent
    created_ms: int
    expires_ms: int


@dataclass(slots=True, frozen=True)
class Closing:
    """Written when a request ends, in one transaction: its outcome, its usage row and ledger debit (when it
    has usage), the resolution of its hold (settled or released), and the events the facts announce."""

    caller: Caller
    call: Call
    outcome: Outcome
    hold_id: str | None  # None: a realtime session's own row, which holds nothing
    hold_status: str  # "settled" | "released"
    events: tuple[Event, ...] = ()
    intent: Intent | None = None  # written first when the intent's own write failed
    idempotency: IdempotencyRecord | None = None  # stored with the charge, so a retry is never charged twice
    job_end: JobEnd | None = None  # an asynchronous job's final state (and result file), ended with its charge


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
    session_id: str | None = None  # a realtime session's row (== request_id) or one of its responses
    checkpoint_usage: Mapping[str, int] | None = None  # a realtime response's running estimate, by unit


@dataclass(slots=True, frozen=True)
class Recovery:
    """How start-up closes one interrupted request: billed (usage + debit, hold settled) or not (hold released)."""

    request: Interrupted
    usage: Usage | None
    charge_micro: int
    ended_ms: int


@dataclass(slots=True, frozen=True)
class BodyRecord:
    """A request's bodies for the request log: compressed JSON, secrets already scrubbed, cut to size."""

    request_id: str
    created_ms: int
    request: bytes | None
    response: bytes | None
    request_truncated: bool = False
    response_truncated: bool = False

    @property
    def size(self) -> int:
        return len(self.request or b"") + len(self.response or b"")


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
    body_bytes: int = 0  # what the request log's bodies weigh now


class Store(Protocol):
    """What the server and the admin API need from storage, as typed operations. The SQLite store
    implements it (server.store.sqlite.store); nothing outside server/store/ sees SQL or a connection.

    Writes that move money or record usage are one transaction each, with their unique source id and the
    events that announce them. Rules the store applies (the ledger's keyed chain, the top-up refusal rule)
    come in as arguments, so storage never imports billing."""

    webhooks: WebhookStore  # endpoints, deliveries and attempts (server/store/webhook_protocol.py)
    media: MediaStore  # stored files and asynchronous jobs (server/store/media_protocol.py)

    @property
    def healthy(self) -> bool:
        """The store can take writes now (requests may be forwarded)."""
        ...

    @property
    def problem(self) -> str | None:
        """Why the store cannot take writes now (a lock, a full disk, failing I/O), or None."""
        ...

    def on_recovered(self, callback: Callable[[], None]) -> None: ...

    @property
    def queued_writes(self) -> int:
        """Writes waiting to be committed now (a number that keeps growing: storage cannot keep up)."""
        ...

    def on_commit(self, callback: Callable[[float], None]) -> None:
        """Call `callback(seconds)` after each group commit with the time its transaction took; it runs on
        the writer's own thread, so it must be quick and thread-safe (a metrics observation)."""
        ...

    async def open(
        self, month_start_ms: int, recover: Callable[[Interrupted], Recovery], rekey_from: Any
    ) -> Loaded: ...

    async def close(self) -> None: ...

    async def flush(self) -> None:
        """Wait until every write queued so far has committed."""
        ...

    # operations (backups, the doctor's questions)
    async def backup(self) -> tuple[Path, dict[str, Any]]:
        """A consistent, checked copy of the live database, as a file beside it the caller removes, and its
        report (integrity, ledger verified, schema, size, sha256). Raises BackupRefused without room."""
        ...

    async def backlog(self) -> dict[str, Any]:
        """What waits in storage: open holds and undelivered outbox events (counts, oldest times), and the
        newest time recorded (a clock that went back behind it would misdate months and budgets)."""
        ...

    async def hold_lease(self, name: str) -> bool:
        """Whether this process does the background work `name` (webhook deliveries, maintenance) now: on
        a shared store one process of the fleet at a time holds its lease; on SQLite, always."""
        ...

    # the request path
    def record_intent(self, intent: Intent) -> asyncio.Future[Any]: ...

    def record_closing(self, closing: Closing) -> asyncio.Future[Any]: ...

    def checkpoint(self, request_id: str, delivered_chars: int, when_ms: int, usage: Usage | None = None) -> None:
        """A stream's progress (lazy, not awaited); `usage`: a realtime response's running estimate."""
        ...

    def add_events(self, events: tuple[Event, ...]) -> asyncio.Future[Any]: ...

    # the catalog (projects, keys)
    async def create_project(self, row: dict[str, Any]) -> None: ...

    async def update_project(self, project_id: str, **values: Any) -> None: ...

    async def create_key(self, row: dict[str, Any]) -> None: ...

    async def update_key_scopes(self, key_id: str, scopes: dict[str, Any], expires_ms: int | None) -> None: ...

    async def rotate_key(
        self, key_id: str, new_hash: str, prefix: str, prev_hash: str | None, prev_valid_until_ms: int | None
    ) -> None: ...

    async def revoke_key(self, key_id: str, when_ms: int, events: tuple[Event, ...] = ()) -> int: ...

    async def touch_keys(self, last_used: list[tuple[int, str]]) -> None: ...

    # money
    async def append_ledger(
        self,
        project_id: str,
        kind: str,
        source_id: str,
        amount_micro: int,
        memo: str,
        when_ms: int,
        events: tuple[Event, ...] = (),
    ) -> tuple[dict[str, Any], bool]:
        """A new entry (and `events`, in its transaction), or the one already recorded under (kind, source_id)."""
        ...

    async def create_topup_order(self, order: dict[str, Any]) -> None: ...

    async def credit_topup(
        self, event_id: str, event_type: str, facts: dict[str, Any], when_ms: int, refusal: Refusal
    ) -> StripeResult: ...

    async def refund(
        self,
        event_id: str,
        event_type: str,
        charge_id: str,
        payment_intent: str | None,
        refunded_micro: int,
        when_ms: int,
    ) -> StripeResult: ...

    async def settle_invoice(
        self, event_id: str, event_type: str, stripe_invoice_id: str, when_ms: int
    ) -> StripeResult: ...

    async def ignore_stripe_event(self, event_id: str, event_type: str, when_ms: int) -> StripeResult: ...

    async def number_invoice(
        self,
        project_id: str,
        month: str,
        subtotal_micro: int,
        tax_micro: int,
        prefix: str,
        frozen: dict[str, Any],
        when_ms: int,
    ) -> dict[str, Any]: ...

    async def set_stripe_invoice(self, invoice_id: str, stripe_invoice_id: str) -> None: ...

    # the request log's bodies
    def record_bodies(self, records: Sequence[BodyRecord], trim_bytes: int) -> asyncio.Future[Any]:
        """Store a batch of bodies (apart from the requests' commits); drop the oldest until `trim_bytes`
        are freed. The future gives the bytes freed."""
        ...

    async def purge_bodies(self, before_ms: int) -> int: ...

    async def read_bodies(self, request_id: str) -> dict[str, Any] | None: ...

    async def list_requests(self, filters: dict[str, Any], limit: int) -> list[dict[str, Any]]: ...

    # idempotency keys
    async def idempotent_answer(self, project_id: str, key: str, now_ms: int) -> IdempotencyRecord | None: ...

    async def purge_idempotency(self, now_ms: int) -> int: ...

    # reads
    async def projects_with_entries(self, start_ms: int, end_ms: int) -> list[str]: ...

    async def invoice_data(self, project_id: str, start_ms: int, end_ms: int) -> dict[str, Any]: ...

    async def ledger_history(self, project_id: str, limit: int) -> list[dict[str, Any]]: ...

    async def verify_ledger(self) -> list[dict[str, Any]]: ...

    async def ledger_states(self, at_ms: int) -> list[dict[str, Any]]: ...

    async def ledger_entries(self, project_id: str) -> list[dict[str, Any]]: ...

    async def usage_totals(
        self, since_ms: int, by: str = "model", project_id: str | None = None
    ) -> list[dict[str, Any]]: ...

    async def committed_totals(self, since_ms: int, request_ids: Sequence[str]) -> Committed:
        """Which of `request_ids` are closed, then spend since `since_ms` per project and key and every
        balance (server/store/sqlite/totals.py): what the hot state's reconciliation sets Redis to."""
        ...

    async def requests_matching(self, ref: str, limit: int = 50) -> list[dict[str, Any]]: ...

    async def session_responses(self, session_id: str) -> list[dict[str, Any]]:
        """The responses of a realtime session (request rows with their usage), oldest first."""
        ...

    async def usage_window(
        self,
        project_id: str,
        start_ms: int,
        end_ms: int,
        model: str | None,
        key_id: str | None,
        group_by: Sequence[str],
        days: Sequence[tuple[str, int, int]],
    ) -> list[dict[str, Any]]:
        """A project's usage over [start_ms, end_ms), exact: sums and latency buckets in rows carrying their
        `group_by` fields (model, key_id, day; `days` labels and bounds the days); rows may repeat a group."""
        ...
