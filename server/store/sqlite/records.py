"""SQL for the request log, usage and holds: the intent (request row + hold), the closing (outcome, usage,
ledger debit, hold resolution, events: one transaction), stream checkpoints, and start-up recovery."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from server.store.protocol import HOLD_JOB, Closing, Event, HoldRecord, Intent, Interrupted, Recovery
from server.store.sqlite import idempotency, ledger
from server.store.sqlite.catalog import rows
from server.store.sqlite.fanout import fan_out
from server.store.sqlite.media_rows import finish_job
from server.store.sqlite.rollups import add_to_rollup

Op = Any  # a writer operation: a function of the connection


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def insert_intent(intent: Intent) -> Op:
    """The request row (status pending) and its hold, written before the request is forwarded. A job's hold
    was written with the job itself: its request row is written alone, when the job ends."""
    caller, call, hold = intent.caller, intent.call, intent.hold

    def op(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO requests (id, client_request_id, project_id, key_id, endpoint, model, stream, status,"
            " started_ms, body_bytes, replay_of, session_id) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
            (
                call.request_id,
                call.client_request_id,
                caller.project_id,
                caller.key_id,
                call.endpoint,
                call.model,
                int(call.stream),
                call.started_ms,
                call.body_bytes,
                call.replay_of,
                call.session_id,
            ),
        )
        if hold is not None and hold.kind != HOLD_JOB:
            insert_hold(conn, hold, call.started_ms)

    return op


def insert_hold(conn: sqlite3.Connection, hold: HoldRecord, when_ms: int) -> None:
    conn.execute(
        "INSERT INTO holds (id, project_id, key_id, micro, wallet, kind, status, price_card, created_ms, expires_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?, ?)",
        (
            hold.id,
            hold.project_id,
            hold.key_id,
            hold.micro,
            int(hold.wallet),
            hold.kind,
            _json(hold.price_card),
            when_ms,
            hold.expires_ms,
        ),
    )


def resolve_hold(conn: sqlite3.Connection, hold_id: str, status: str, when_ms: int) -> None:
    """Settle, release or expire an open hold; a hold resolved twice is an error (the transaction aborts)."""
    cur = conn.execute(
        "UPDATE holds SET status = ?, resolved_ms = ? WHERE id = ? AND status = 'open'", (status, when_ms, hold_id)
    )
    if cur.rowcount != 1:
        raise LookupError(f"hold {hold_id} is not open")


def checkpoint(request_id: str, delivered_chars: int, when_ms: int, usage: Any = None) -> Op:
    """A stream's progress, so that a crash bills what was delivered (a realtime response's running
    estimate as quantities by unit, when it gives one)."""
    estimate = _json(usage.quantities) if usage is not None else None

    def op(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE requests SET delivered_chars = ?, checkpoint_ms = ?, checkpoint_usage = ?"
            " WHERE id = ? AND status = 'pending'",
            (delivered_chars, when_ms, estimate, request_id),
        )

    return op


def _insert_usage(
    conn: sqlite3.Connection,
    chain: ledger.Chain,
    request_id: str,
    project_id: str,
    key_id: str,
    model: str,
    provider: str | None,
    usage: Any,
    charge_micro: int,
    card: Mapping[str, Any],
    when_ms: int,
) -> None:
    others = usage.others()
    conn.execute(
        "INSERT INTO usage (request_id, project_id, key_id, model, provider, input_tokens, output_tokens,"
        " cached_tokens, cost_micro, price_card, estimated, created_ms, quantities)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            request_id,
            project_id,
            key_id,
            model,
            provider,
            usage.input_tokens,
            usage.output_tokens,
            usage.cached_tokens,
            charge_micro,
            _json(card),
            int(usage.estimated),
            when_ms,
            _json(others) if others else None,
        ),
    )
    ledger.append(conn, chain, project_id, "usage", request_id, -charge_micro, model, when_ms)


def insert_events(conn: sqlite3.Connection, events: Iterable[Event]) -> None:
    for event in events:
        insert_event(conn, event.id, event.type, event.project_id, dict(event.payload), event.created_ms)


def close(closing: Closing, chain: ledger.Chain) -> Op:
    """The outcome, its usage row and ledger debit (unique by request id), the hold's resolution and the
    events it announces, all in one transaction."""
    caller, call, outcome = closing.caller, closing.call, closing.outcome
    intent = insert_intent(closing.intent) if closing.intent is not None else None

    def op(conn: sqlite3.Connection) -> None:
        if intent is not None:
            intent(conn)
        target = outcome.target
        conn.execute(
            "UPDATE requests SET status = ?, http_status = ?, error_code = ?, provider = ?, upstream_model = ?,"
            " attempts = ?, ended_ms = ?, cache_status = ? WHERE id = ?",
            (
                outcome.status,
                outcome.http_status,
                outcome.error_code,
                target.provider if target else None,
                target.model if target else None,
                _json([a.as_dict() for a in outcome.attempts]),
                outcome.ended_ms,
                outcome.cache_status,
                call.request_id,
            ),
        )
        if outcome.usage is not None and outcome.charge is not None:
            _insert_usage(
                conn,
                chain,
                call.request_id,
                caller.project_id,
                caller.key_id,
                call.model,
                target.provider if target else None,
                outcome.usage,
                outcome.charge.micro,
                outcome.charge.card,
                outcome.ended_ms,
            )
        if closing.hold_id is not None:
            resolve_hold(conn, closing.hold_id, closing.hold_status, outcome.ended_ms)
        if closing.job_end is not None:
            finish_job(conn, closing.job_end)
        insert_events(conn, closing.events)
        if closing.idempotency is not None:
            idempotency.insert(conn, closing.idempotency)
        if call.is_session:  # /v1/usage counts a realtime session's responses, not the session itself
            return
        usage, charge = outcome.usage, outcome.charge
        add_to_rollup(
            conn,
            caller.project_id,
            caller.key_id,
            call.model,
            outcome.ended_ms,
            outcome.status != "ok",
            (usage.input_tokens, usage.output_tokens, usage.cached_tokens) if usage is not None else (0, 0, 0),
            charge.micro if charge is not None else 0,
            outcome.ended_ms - call.started_ms,
        )

    return op


def month_spend(conn: sqlite3.Connection, since_ms: int) -> tuple[dict[str, int], dict[str, int]]:
    """Spend since the month started, by project and by key (rebuilds budgets after a restart)."""
    by_project = dict(
        conn.execute(
            "SELECT project_id, SUM(cost_micro) FROM usage WHERE created_ms >= ? GROUP BY project_id", (since_ms,)
        )
    )
    by_key = dict(
        conn.execute("SELECT key_id, SUM(cost_micro) FROM usage WHERE created_ms >= ? GROUP BY key_id", (since_ms,))
    )
    return by_project, by_key


def insert_event(
    conn: sqlite3.Connection,
    event_id: str,
    event_type: str,
    project_id: str | None,
    payload: dict[str, object],
    when_ms: int,
) -> bool:
    """An outbox event, once per id (inside the caller's transaction): a replayed source never enqueues it twice.
    Its webhook deliveries are fanned out with it."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO outbox (id, event_type, project_id, payload, created_ms) VALUES (?, ?, ?, ?, ?)",
        (event_id, event_type, project_id, _json(payload), when_ms),
    )
    if cur.rowcount != 1:
        return False
    fan_out(conn, event_id, event_type, project_id, when_ms)  # its webhook deliveries, in this transaction
    return True


def add_events(events: Iterable[Event]) -> Op:
    """Events as a writer operation of their own (for facts that have no other row)."""
    return lambda conn: insert_events(conn, events)


def _hold_record(row: dict[str, Any]) -> HoldRecord:
    return HoldRecord(
        id=row["id"],
        project_id=row["project_id"],
        key_id=row["key_id"],
        micro=row["micro"],
        wallet=bool(row["wallet"]),
        price_card=orjson.loads(row["price_card"] or "{}"),
        kind=row["kind"],
        expires_ms=row["expires_ms"],
    )


def open_holds(conn: sqlite3.Connection) -> list[HoldRecord]:
    """Holds that stay open across a restart (jobs, sessions); request holds are resolved by recovery."""
    found = rows(conn, "SELECT * FROM holds WHERE status = 'open' AND kind != 'request'")
    return [_hold_record(row) for row in found]


def interrupted(conn: sqlite3.Connection, scope: str = "") -> list[Interrupted]:
    """Requests a crash left pending, with what their intent and last checkpoint prove. `scope` narrows
    them (a fleet on PostgreSQL: only those of dead processes, locked; see server/store/postgres/fleet.py)."""
    found = rows(
        conn,
        "SELECT r.id, r.project_id, r.key_id, r.model, r.stream, r.body_bytes, r.delivered_chars, r.session_id,"
        " r.checkpoint_usage, h.id AS hold_id, h.price_card FROM requests r"
        " LEFT JOIN holds h ON h.id = r.id AND h.status = 'open' WHERE r.status = 'pending'" + scope,
    )
    return [
        Interrupted(
            request_id=row["id"],
            project_id=row["project_id"],
            key_id=row["key_id"],
            model=row["model"],
            stream=bool(row["stream"]),
            body_bytes=row["body_bytes"] or 0,
            delivered_chars=row["delivered_chars"],
            hold_id=row["hold_id"],
            price_card=orjson.loads(row["price_card"] or "{}"),
            session_id=row["session_id"],
            checkpoint_usage=orjson.loads(row["checkpoint_usage"]) if row["checkpoint_usage"] else None,
        )
        for row in found
    ]


def recover(conn: sqlite3.Connection, chain: ledger.Chain, recoveries: Iterable[Recovery]) -> None:
    """Close interrupted requests (inside the caller's transaction): bill what is proven, resolve each hold."""
    for item in recoveries:
        request = item.request
        billed = item.usage is not None
        conn.execute(
            "UPDATE requests SET status = 'interrupted', http_status = 499, error_code = 'interrupted', ended_ms = ?"
            " WHERE id = ? AND status = 'pending'",
            (item.ended_ms, request.request_id),
        )
        if billed:
            _insert_usage(
                conn,
                chain,
                request.request_id,
                request.project_id,
                request.key_id,
                request.model,
                None,
                item.usage,
                item.charge_micro,
                request.price_card,
                item.ended_ms,
            )
        if request.hold_id is not None:
            resolve_hold(conn, request.hold_id, "settled" if billed else "released", item.ended_ms)
        if request.session_id is not None and request.session_id == request.request_id:
            continue  # a realtime session's own row: its responses are what /v1/usage counts
        usage = item.usage
        tokens = (usage.input_tokens, usage.output_tokens, usage.cached_tokens) if usage is not None else (0, 0, 0)
        add_to_rollup(
            conn, request.project_id, request.key_id, request.model, item.ended_ms, True, tokens, item.charge_micro, 0
        )
