"""Numbered schema migrations; each runs in its own transaction and is recorded once."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import sqlite_utils

from server.clock import now_ms
from server.store.sqlite.rollups import HOURS_ONLY, add_to_rollup
from server.usage_report import COLUMNS

Migration = Callable[[sqlite_utils.Database], None]


def _m001_initial(db: sqlite_utils.Database) -> None:
    db["projects"].create(
        {"id": str, "name": str, "plan": str, "billing": str, "created_ms": int},
        pk="id",
        not_null={"name", "billing", "created_ms"},
        defaults={"billing": "postpaid"},
    )
    db["projects"].create_index(["name"], unique=True)
    db["api_keys"].create(
        {
            "id": str,
            "project_id": str,
            "name": str,
            "key_hash": str,
            "prefix": str,
            "scopes": str,
            "created_ms": int,
            "expires_ms": int,
            "revoked_ms": int,
        },
        pk="id",
        not_null={"project_id", "key_hash", "prefix", "created_ms"},
        foreign_keys=[("project_id", "projects", "id")],
    )
    db["api_keys"].create_index(["key_hash"], unique=True)
    db["api_keys"].create_index(["project_id"])
    db["requests"].create(
        {
            "id": str,
            "client_request_id": str,
            "project_id": str,
            "key_id": str,
            "endpoint": str,
            "model": str,
            "stream": int,
            "status": str,
            "http_status": int,
            "error_code": str,
            "provider": str,
            "upstream_model": str,
            "attempts": str,
            "started_ms": int,
            "ended_ms": int,
        },
        pk="id",
        not_null={"project_id", "key_id", "endpoint", "model", "status", "started_ms"},
    )
    db["requests"].create_index(["client_request_id"])
    db["requests"].create_index(["status"])
    db["requests"].create_index(["started_ms"])
    db["usage"].create(
        {
            "request_id": str,
            "project_id": str,
            "key_id": str,
            "model": str,
            "provider": str,
            "input_tokens": int,
            "output_tokens": int,
            "cached_tokens": int,
            "cost_micro": int,
            "price_card": str,
            "estimated": int,
            "created_ms": int,
        },
        pk="request_id",
        not_null={"project_id", "key_id", "model", "cost_micro", "price_card", "created_ms"},
        foreign_keys=[("request_id", "requests", "id")],
    )
    db["usage"].create_index(["created_ms"])
    db["usage"].create_index(["project_id", "created_ms"])
    db["admin_tokens"].create(
        {"id": str, "token_hash": str, "prefix": str, "created_ms": int, "revoked_ms": int},
        pk="id",
        not_null={"token_hash", "prefix", "created_ms"},
    )
    db["admin_tokens"].create_index(["token_hash"], unique=True)


def _m002_limits_budgets_ledger(db: sqlite_utils.Database) -> None:
    db["api_keys"].add_column("prev_key_hash", str)
    db["api_keys"].add_column("prev_valid_until_ms", int)
    db["api_keys"].create_index(["prev_key_hash"])
    db["projects"].add_column("monthly_budget_micro", int)
    db["projects"].add_column("stripe_customer_id", str)
    # The wallet: balance and the head of the project's ledger hash chain, moved in the same
    # transaction as every entry, so `ledger verify` also detects a deleted last entry.
    db["projects"].add_column("balance_micro", int, not_null_default=0)
    db["projects"].add_column("ledger_entries", int, not_null_default=0)
    db["projects"].add_column("ledger_head", str, not_null_default="")
    db["ledger"].create(
        {
            "id": str,
            "project_id": str,
            "kind": str,
            "source_id": str,
            "amount_micro": int,
            "balance_after_micro": int,
            "memo": str,
            "created_ms": int,
            "prev_hash": str,
            "hash": str,
        },
        pk="id",
        not_null={"project_id", "kind", "source_id", "amount_micro", "balance_after_micro", "created_ms", "hash"},
        foreign_keys=[("project_id", "projects", "id")],
    )
    db["ledger"].create_index(["kind", "source_id"], unique=True)
    db["ledger"].create_index(["project_id", "created_ms"])
    for action in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER ledger_no_{action.lower()} BEFORE {action} ON ledger"
            " BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END"
        )
    db["outbox"].create(
        {
            "id": str,
            "event_type": str,
            "project_id": str,
            "payload": str,
            "created_ms": int,
            "delivered_ms": int,
            "attempts": int,
        },
        pk="id",
        not_null={"event_type", "payload", "created_ms"},
        defaults={"attempts": 0},
    )
    db["outbox"].create_index(["delivered_ms"])


def _m003_stripe_invoices(db: sqlite_utils.Database) -> None:
    # A top-up the gateway ordered: Stripe must confirm exactly this amount and currency.
    db["topup_orders"].create(
        {
            "id": str,
            "project_id": str,
            "session_id": str,
            "payment_intent": str,
            "amount_micro": int,
            "currency": str,
            "status": str,
            "created_ms": int,
            "credited_ms": int,
        },
        pk="id",
        not_null={"project_id", "session_id", "amount_micro", "currency", "status", "created_ms"},
        foreign_keys=[("project_id", "projects", "id")],
    )
    db["topup_orders"].create_index(["session_id"], unique=True)
    db["topup_orders"].create_index(["payment_intent"], unique=True)
    # Every Stripe event id seen, so a replayed delivery changes nothing.
    db["stripe_events"].create(
        {"id": str, "event_type": str, "received_ms": int, "outcome": str},
        pk="id",
        not_null={"event_type", "received_ms", "outcome"},
    )
    db["invoices"].create(
        {
            "id": str,
            "seq": int,
            "number": str,
            "project_id": str,
            "month": str,
            "total_micro": int,
            "status": str,
            "stripe_invoice_id": str,
            "created_ms": int,
            "paid_ms": int,
        },
        pk="id",
        not_null={"seq", "number", "project_id", "month", "total_micro", "status", "created_ms"},
        foreign_keys=[("project_id", "projects", "id")],
    )
    db["invoices"].create_index(["seq"], unique=True)
    db["invoices"].create_index(["number"], unique=True)
    db["invoices"].create_index(["project_id", "month"], unique=True)
    db["invoices"].create_index(["stripe_invoice_id"])


def _m004_key_last_used(db: sqlite_utils.Database) -> None:
    # Written in batches by the server (server/key_activity.py), never per request.
    db["api_keys"].add_column("last_used_ms", int)


def _m005_invoices_for_business(db: sqlite_utils.Database) -> None:
    # Who a project's invoices are addressed to, and its own tax rate (percent as exact decimal text;
    # NULL: the configured default).
    for column in ("billing_name", "billing_address", "billing_tax_id", "billing_email", "tax_rate"):
        db["projects"].add_column(column, str)
    # Invoice numbers come from a counter row moved in the numbering transaction (never MAX(seq)+1),
    # starting after the highest number already issued.
    db["counters"].create({"name": str, "value": int}, pk="name", not_null={"value"})
    db.execute("INSERT INTO counters (name, value) SELECT 'invoice', COALESCE(MAX(seq), 0) FROM invoices")
    # Drafts are no longer stored (they had consumed numbers): a draft is computed on each export.
    db.execute("DELETE FROM invoices WHERE status = 'draft'")
    # A closed invoice freezes what it says beyond the ledger (issuer, bill-to, tax, terms, currency)
    # so it re-exports byte-identical whatever the configuration or the project's details become.
    db["invoices"].add_column("subtotal_micro", int)
    db["invoices"].add_column("tax_micro", int, not_null_default=0)
    db["invoices"].add_column("frozen", str)
    db.execute("UPDATE invoices SET subtotal_micro = total_micro")


def _m006_holds_units_checkpoints(db: sqlite_utils.Database) -> None:
    # A reservation outlives the process: written with its request's intent, resolved exactly once in the
    # transaction of its outcome (settled or released), or at start-up (released, or settled for a stream
    # that delivered bytes; kind 'job' and 'session' holds stay open across a restart).
    db["holds"].create(
        {
            "id": str,
            "project_id": str,
            "key_id": str,
            "micro": int,
            "wallet": int,
            "kind": str,
            "status": str,
            "price_card": str,
            "created_ms": int,
            "resolved_ms": int,
            "expires_ms": int,
        },
        pk="id",
        not_null={"project_id", "key_id", "micro", "wallet", "kind", "status", "created_ms"},
        defaults={"kind": "request", "status": "open"},
    )
    db.execute("CREATE INDEX idx_holds_open ON holds (status) WHERE status = 'open'")
    # What a request's intent proves after a crash: the size of its body, and for a stream the characters
    # delivered so far (checkpointed while it runs).
    db["requests"].add_column("body_bytes", int)
    db["requests"].add_column("delivered_chars", int)
    db["requests"].add_column("checkpoint_ms", int)
    db.execute("CREATE INDEX idx_requests_pending ON requests (status) WHERE status = 'pending'")
    # Quantities beyond the three token columns (images, seconds, characters, audio tokens), as JSON.
    db["usage"].add_column("quantities", str)
    # INSERT OR REPLACE deletes the row it replaces without firing the DELETE trigger: refuse it up front.
    db.execute(
        "CREATE TRIGGER ledger_no_replace BEFORE INSERT ON ledger"
        " WHEN EXISTS (SELECT 1 FROM ledger WHERE id = NEW.id OR (kind = NEW.kind AND source_id = NEW.source_id))"
        " BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END"
    )


def _m008_operator_loop(db: sqlite_utils.Database) -> None:
    # Rollups for /v1/usage: per hour x project x key x model, moved in the transaction of each closing,
    # with a latency histogram (server/usage_report.py's buckets) for p50/p95 over any window.
    buckets = ", ".join(f"{column} INTEGER NOT NULL DEFAULT 0" for column in COLUMNS)
    db.execute(
        "CREATE TABLE usage_hours (project_id TEXT NOT NULL, hour_ms INTEGER NOT NULL, key_id TEXT NOT NULL,"
        " model TEXT NOT NULL, requests INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0,"
        " input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0,"
        " cached_tokens INTEGER NOT NULL DEFAULT 0, cost_micro INTEGER NOT NULL DEFAULT 0,"
        f" {buckets}, PRIMARY KEY (project_id, hour_ms, key_id, model)) WITHOUT ROWID"
    )
    rows = db.execute(
        "SELECT r.project_id, r.key_id, r.model, r.status, r.started_ms, r.ended_ms, u.input_tokens,"
        " u.output_tokens, u.cached_tokens, u.cost_micro, u.created_ms FROM requests r"
        " LEFT JOIN usage u ON u.request_id = r.id WHERE r.status != 'pending'"
    ).fetchall()
    for project, key, model, status, started, ended, tokens_in, tokens_out, cached, cost, created in rows:
        at, error = created or ended or started, status != "ok"
        tokens = (tokens_in or 0, tokens_out or 0, cached or 0)
        latency = (ended or at) - started
        add_to_rollup(db.conn, project, key, model or "", at, error, tokens, cost or 0, latency, tiers=HOURS_ONLY)
    # Bodies of requests and answers (compressed, secrets scrubbed), apart from the request rows.
    db.execute(
        "CREATE TABLE request_bodies (request_id TEXT PRIMARY KEY, created_ms INTEGER NOT NULL,"
        " request BLOB, response BLOB, request_truncated INTEGER NOT NULL DEFAULT 0,"
        " response_truncated INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL)"
    )
    db.execute("CREATE INDEX idx_request_bodies_created ON request_bodies (created_ms)")
    db["requests"].add_column("replay_of", str)
    db["requests"].add_column("cache_status", str)
    db.execute("CREATE INDEX idx_requests_project_started ON requests (project_id, started_ms)")
    db.execute("CREATE INDEX idx_requests_project_ended ON requests (project_id, ended_ms)")  # /v1/usage edges
    db.execute("DROP INDEX IF EXISTS idx_requests_status")  # the partial index of pending rows serves start-up
    # Idempotency keys (per project): the first result of a POST, replayed for the same key and body.
    db.execute(
        "CREATE TABLE idempotency (project_id TEXT NOT NULL, key TEXT NOT NULL, body_sha256 TEXT NOT NULL,"
        " request_id TEXT NOT NULL, status INTEGER NOT NULL, headers TEXT NOT NULL, stream INTEGER NOT NULL,"
        " body BLOB NOT NULL, created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL,"
        " PRIMARY KEY (project_id, key)) WITHOUT ROWID"
    )
    db.execute("CREATE INDEX idx_idempotency_expires ON idempotency (expires_ms)")


def _m009_usage_days(db: sqlite_utils.Database) -> None:
    # Day rollups (UTC days) beside the hourly ones: a month-long /v1/usage window reads ~30 rows per key
    # and model instead of ~720. Filled from the hourly rows already there.
    buckets = ", ".join(f"{column} INTEGER NOT NULL DEFAULT 0" for column in COLUMNS)
    db.execute(
        "CREATE TABLE usage_days (project_id TEXT NOT NULL, day_ms INTEGER NOT NULL, key_id TEXT NOT NULL,"
        " model TEXT NOT NULL, requests INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0,"
        " input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0,"
        " cached_tokens INTEGER NOT NULL DEFAULT 0, cost_micro INTEGER NOT NULL DEFAULT 0,"
        f" {buckets}, PRIMARY KEY (project_id, day_ms, key_id, model)) WITHOUT ROWID"
    )
    sums = ("requests", "errors", "input_tokens", "output_tokens", "cached_tokens", "cost_micro", *COLUMNS)
    names = ", ".join(sums)
    db.execute(
        f"INSERT INTO usage_days (project_id, day_ms, key_id, model, {names})"
        f" SELECT project_id, hour_ms - hour_ms % 86400000, key_id, model, {', '.join(f'SUM({n})' for n in sums)}"
        " FROM usage_hours GROUP BY project_id, hour_ms - hour_ms % 86400000, key_id, model"
    )


def _m011_realtime(db: sqlite_utils.Database) -> None:
    # A realtime session is one request row (session_id = its own id) and each of its responses another
    # (session_id = the session's id), with its own usage row, ledger debit (unique by the response's
    # request id) and hold; `requests show SESSION` lists them. A response's running usage estimate (text
    # and audio, input and output) is checkpointed while it streams, so a crash bills what it delivered.
    db["requests"].add_column("session_id", str)
    db["requests"].add_column("checkpoint_usage", str)
    db.execute("CREATE INDEX idx_requests_session ON requests (session_id) WHERE session_id IS NOT NULL")


def _m007_webhooks(db: sqlite_utils.Database) -> None:
    # A project's signed webhook endpoints. The secret must be stored to sign (HMAC); the previous one keeps
    # signing beside it until prev_secret_until_ms after a rotation. paused_until_ms holds the whole
    # endpoint back after a failed attempt (its deliveries go in event order); failing_since_ms is when the
    # current run of failures began (an endpoint failing long enough is disabled).
    db["webhook_endpoints"].create(
        {
            "id": str,
            "project_id": str,
            "url": str,
            "events": str,
            "description": str,
            "secret": str,
            "prev_secret": str,
            "prev_secret_until_ms": int,
            "status": str,
            "created_ms": int,
            "failing_since_ms": int,
            "paused_until_ms": int,
            "disabled_ms": int,
            "disabled_reason": str,
            "deleted_ms": int,
        },
        pk="id",
        not_null={"project_id", "url", "events", "secret", "status", "created_ms"},
        defaults={"status": "enabled"},
        foreign_keys=[("project_id", "projects", "id")],
    )
    db["webhook_endpoints"].create_index(["project_id"])
    # One delivery per (event, endpoint), fanned out in the transaction that writes the event.
    db["webhook_deliveries"].create(
        {
            "id": str,
            "event_id": str,
            "endpoint_id": str,
            "project_id": str,
            "event_type": str,
            "event_ms": int,
            "status": str,
            "attempts": int,
            "last_attempt_ms": int,
            "last_status_code": int,
            "last_error": str,
            "delivered_ms": int,
        },
        pk="id",
        not_null={"event_id", "endpoint_id", "project_id", "event_type", "event_ms", "status", "attempts"},
        defaults={"status": "pending", "attempts": 0},
        foreign_keys=[("event_id", "outbox", "id"), ("endpoint_id", "webhook_endpoints", "id")],
    )
    db["webhook_deliveries"].create_index(["event_id", "endpoint_id"], unique=True)
    db["webhook_deliveries"].create_index(["endpoint_id", "event_ms"])
    db["webhook_deliveries"].create_index(["status", "event_ms"])
    db.execute(
        "CREATE INDEX idx_webhook_deliveries_pending ON webhook_deliveries (endpoint_id, event_ms)"
        " WHERE status = 'pending'"
    )
    # Every attempt: when, how long, what came back (the first KiB of the answer) or what went wrong.
    db["webhook_attempts"].create(
        {
            "id": int,
            "delivery_id": str,
            "number": int,
            "started_ms": int,
            "latency_ms": int,
            "ok": int,
            "response_code": int,
            "response_body": str,
            "error": str,
        },
        pk="id",
        not_null={"delivery_id", "number", "started_ms", "latency_ms", "ok"},
        foreign_keys=[("delivery_id", "webhook_deliveries", "id")],
    )
    db["webhook_attempts"].create_index(["delivery_id", "number"])


def _m010_media(db: sqlite_utils.Database) -> None:
    # Stored files: uploads, generated images, job results. The bytes live on disk under the data dir
    # (files/<project>/<id>); a deleted file keeps its row (deleted_ms) so its id is never reused.
    db["files"].create(
        {
            "id": str,
            "project_id": str,
            "purpose": str,
            "filename": str,
            "bytes": int,
            "content_type": str,
            "sha256": str,
            "source": str,
            "request_id": str,
            "created_ms": int,
            "deleted_ms": int,
        },
        pk="id",
        not_null={"project_id", "purpose", "filename", "bytes", "content_type", "sha256", "source", "created_ms"},
        foreign_keys=[("project_id", "projects", "id")],
    )
    db.execute("CREATE INDEX idx_files_live ON files (project_id, created_ms) WHERE deleted_ms IS NULL")
    # Asynchronous jobs (video, music). The hold (kind 'job') is written with the job row; the request row,
    # usage, debit, hold resolution, the job's final state and its job.* event share one transaction when
    # the job ends. upstream_id is recorded once the provider accepted the job: a job without one is
    # submitted (again, with the same idempotency key) after a restart; one with it is only polled.
    db["jobs"].create(
        {
            "id": str,
            "kind": str,
            "project_id": str,
            "key_id": str,
            "request_id": str,
            "client_request_id": str,
            "model": str,
            "target": str,
            "upstream_id": str,
            "status": str,
            "progress": int,
            "body": str,
            "seconds": int,
            "size": str,
            "base_url": str,
            "result_file_id": str,
            "error": str,
            "submits": int,
            "created_ms": int,
            "updated_ms": int,
            "deadline_ms": int,
            "completed_ms": int,
            "deleted_ms": int,
        },
        pk="id",
        not_null={"kind", "project_id", "key_id", "request_id", "model", "status", "body", "created_ms"},
        defaults={"status": "queued", "progress": 0, "submits": 0},
        foreign_keys=[("project_id", "projects", "id")],
    )
    db["jobs"].create_index(["project_id", "kind", "created_ms"])
    db.execute("CREATE INDEX idx_jobs_active ON jobs (status) WHERE status IN ('queued', 'in_progress')")


def _m012_bodies_apart(db: sqlite_utils.Database) -> None:
    # The request log's bodies move to a database file of their own (bodies.db, store/sqlite/bodies.py).
    # Those stored here before are diagnostics, not records: they are dropped, not copied.
    db.execute("DROP TABLE IF EXISTS request_bodies")


MIGRATIONS: list[tuple[str, Migration]] = [
    ("001_initial", _m001_initial),
    ("002_limits_budgets_ledger", _m002_limits_budgets_ledger),
    ("003_stripe_invoices", _m003_stripe_invoices),
    ("004_key_last_used", _m004_key_last_used),
    ("005_invoices_for_business", _m005_invoices_for_business),
    ("006_holds_units_checkpoints", _m006_holds_units_checkpoints),
    ("007_webhooks", _m007_webhooks),
    ("008_operator_loop", _m008_operator_loop),
    ("009_usage_days", _m009_usage_days),
    ("010_media", _m010_media),
    ("011_realtime", _m011_realtime),
    ("012_bodies_apart", _m012_bodies_apart),
]


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply pending migrations in order; returns the names applied now."""
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_ms INTEGER NOT NULL)")
    done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    db = sqlite_utils.Database(conn)
    applied: list[str] = []
    for name, step in MIGRATIONS:
        if name in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            step(db)
            conn.execute("INSERT INTO _migrations (name, applied_ms) VALUES (?, ?)", (name, now_ms()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied
