"""SQL for the request log and usage: the intent row, and the outcome + usage in one operation."""

from __future__ import annotations

import sqlite3

import orjson

from server.clock import now_ms
from server.store.sqlite import ledger
from server.types import Call, Caller, Outcome


def insert_intent(caller: Caller, call: Call) -> object:
    """The request row written before forwarding; status stays 'pending' until the outcome."""

    def op(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO requests (id, client_request_id, project_id, key_id, endpoint, model, stream, status,"
            " started_ms) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
            (
                call.request_id,
                call.client_request_id,
                caller.project_id,
                caller.key_id,
                call.endpoint,
                call.model,
                int(call.stream),
                call.started_ms,
            ),
        )

    return op


def complete(caller: Caller, call: Call, outcome: Outcome) -> object:
    """Close the request row and, when usage exists, insert its one usage row (unique by request id)
    and its one ledger debit (unique by kind + request id), all in the same transaction."""

    def op(conn: sqlite3.Connection) -> None:
        target = outcome.target
        conn.execute(
            "UPDATE requests SET status = ?, http_status = ?, error_code = ?, provider = ?, upstream_model = ?,"
            " attempts = ?, ended_ms = ? WHERE id = ?",
            (
                outcome.status,
                outcome.http_status,
                outcome.error_code,
                target.provider if target else None,
                target.model if target else None,
                orjson.dumps([a.as_dict() for a in outcome.attempts]).decode(),
                outcome.ended_ms,
                call.request_id,
            ),
        )
        if outcome.usage is None or outcome.charge is None:
            return
        usage, charge = outcome.usage, outcome.charge
        conn.execute(
            "INSERT INTO usage (request_id, project_id, key_id, model, provider, input_tokens, output_tokens,"
            " cached_tokens, cost_micro, price_card, estimated, created_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                call.request_id,
                caller.project_id,
                caller.key_id,
                call.model,
                target.provider if target else None,
                usage.input_tokens,
                usage.output_tokens,
                usage.cached_tokens,
                charge.micro,
                orjson.dumps(charge.rates.as_card()).decode(),
                int(usage.estimated),
                outcome.ended_ms,
            ),
        )
        ledger.append(conn, caller.project_id, "usage", call.request_id, -charge.micro, call.model, outcome.ended_ms)

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
    """An outbox event, once per id (inside the caller's transaction): a replayed source never enqueues it twice."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO outbox (id, event_type, project_id, payload, created_ms) VALUES (?, ?, ?, ?, ?)",
        (event_id, event_type, project_id, orjson.dumps(payload).decode(), when_ms),
    )
    return cur.rowcount == 1


def add_event(
    event_id: str, event_type: str, project_id: str | None, payload: dict[str, object], when_ms: int
) -> object:
    """`insert_event` as a writer operation of its own."""
    return lambda conn: insert_event(conn, event_id, event_type, project_id, payload, when_ms)


def close_interrupted(conn: sqlite3.Connection) -> int:
    """At start-up: intents a crash left without an outcome are closed as 'interrupted'."""
    cur = conn.execute("UPDATE requests SET status = 'interrupted', ended_ms = ? WHERE status = 'pending'", (now_ms(),))
    return cur.rowcount
