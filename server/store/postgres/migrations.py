"""PostgreSQL's numbered migrations, each in its own transaction and recorded once (as SQLite's are).

The pair rule: `001_baseline` is SQLite's schema after its migrations 001-012 (same tables, columns,
keys and indexes; INTEGER as BIGINT, BLOB as BYTEA), so a database moved by `gatewayctl migrate-store`
holds the same rows; each later SQLite migration gets its PostgreSQL pair here under the same number
(tests/unit/test_postgres_schema.py fails when the two schemas drift apart). What PostgreSQL needs and
SQLite does not comes in migrations of its own, named `pg_…`:

- `rowid` identity columns, so the shared queries' `ORDER BY rowid` (insertion order: a ledger's chain
  order) means the same thing;
- the ledger's append-only rule as triggers that refuse UPDATE, DELETE and TRUNCATE;
- the fleet: `instances` (each live process renews its row; a stale one is dead), `owner` on requests
  and holds (filled from the writer connection's `gateway.instance` setting, so the shared INSERTs need
  no change) and `leases` (background work held by one process at a time);
- stored files' bytes: `file_chunks` (server/store/postgres/blobs.py), so every process serves every file.
"""

from __future__ import annotations

import logging
from typing import Any

from server.clock import now_ms

log = logging.getLogger("gateway.store")

BASELINE = """
CREATE TABLE projects (id TEXT PRIMARY KEY, name TEXT NOT NULL, plan TEXT, billing TEXT NOT NULL
DEFAULT 'postpaid', created_ms BIGINT NOT NULL, monthly_budget_micro BIGINT, stripe_customer_id
TEXT, balance_micro BIGINT NOT NULL DEFAULT 0, ledger_entries BIGINT NOT NULL DEFAULT 0, ledger_head
TEXT NOT NULL DEFAULT '', billing_name TEXT, billing_address TEXT, billing_tax_id TEXT,
billing_email TEXT, tax_rate TEXT);
CREATE UNIQUE INDEX idx_projects_name ON projects (name);
CREATE TABLE api_keys (id TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id), name
TEXT, key_hash TEXT NOT NULL, prefix TEXT NOT NULL, scopes TEXT, created_ms BIGINT NOT NULL,
expires_ms BIGINT, revoked_ms BIGINT, prev_key_hash TEXT, prev_valid_until_ms BIGINT, last_used_ms
BIGINT);
CREATE UNIQUE INDEX idx_api_keys_key_hash ON api_keys (key_hash);
CREATE INDEX idx_api_keys_project_id ON api_keys (project_id);
CREATE TABLE requests (id TEXT PRIMARY KEY, client_request_id TEXT, project_id TEXT NOT NULL, key_id
TEXT NOT NULL, endpoint TEXT NOT NULL, model TEXT NOT NULL, stream BIGINT, status TEXT NOT NULL,
http_status BIGINT, error_code TEXT, provider TEXT, upstream_model TEXT, attempts TEXT, started_ms
BIGINT NOT NULL, ended_ms BIGINT, body_bytes BIGINT, delivered_chars BIGINT, checkpoint_ms BIGINT,
replay_of TEXT, cache_status TEXT, session_id TEXT, checkpoint_usage TEXT, rowid BIGINT GENERATED ALWAYS AS
IDENTITY);
CREATE INDEX idx_requests_session ON requests (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX idx_requests_client_request_id ON requests (client_request_id);
CREATE INDEX idx_requests_started_ms ON requests (started_ms);
CREATE TABLE usage (request_id TEXT PRIMARY KEY REFERENCES requests(id), project_id TEXT NOT NULL,
key_id TEXT NOT NULL, model TEXT NOT NULL, provider TEXT, input_tokens BIGINT, output_tokens BIGINT,
cached_tokens BIGINT, cost_micro BIGINT NOT NULL, price_card TEXT NOT NULL, estimated BIGINT,
created_ms BIGINT NOT NULL, quantities TEXT, rowid BIGINT GENERATED ALWAYS AS IDENTITY);
CREATE INDEX idx_usage_created_ms ON usage (created_ms);
CREATE INDEX idx_usage_project_id_created_ms ON usage (project_id, created_ms);
CREATE TABLE admin_tokens (id TEXT PRIMARY KEY, token_hash TEXT NOT NULL, prefix TEXT NOT NULL,
created_ms BIGINT NOT NULL, revoked_ms BIGINT);
CREATE UNIQUE INDEX idx_admin_tokens_token_hash ON admin_tokens (token_hash);
CREATE INDEX idx_api_keys_prev_key_hash ON api_keys (prev_key_hash);
CREATE TABLE ledger (id TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id), kind
TEXT NOT NULL, source_id TEXT NOT NULL, amount_micro BIGINT NOT NULL, balance_after_micro BIGINT NOT
NULL, memo TEXT, created_ms BIGINT NOT NULL, prev_hash TEXT, hash TEXT NOT NULL, rowid BIGINT
GENERATED ALWAYS AS IDENTITY);
CREATE UNIQUE INDEX idx_ledger_kind_source_id ON ledger (kind, source_id);
CREATE INDEX idx_ledger_project_id_created_ms ON ledger (project_id, created_ms);
CREATE TABLE outbox (id TEXT PRIMARY KEY, event_type TEXT NOT NULL, project_id TEXT, payload TEXT
NOT NULL, created_ms BIGINT NOT NULL, delivered_ms BIGINT, attempts BIGINT DEFAULT 0, rowid BIGINT
GENERATED ALWAYS AS IDENTITY);
CREATE INDEX idx_outbox_delivered_ms ON outbox (delivered_ms);
CREATE TABLE topup_orders (id TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id),
session_id TEXT NOT NULL, payment_intent TEXT, amount_micro BIGINT NOT NULL, currency TEXT NOT NULL,
status TEXT NOT NULL, created_ms BIGINT NOT NULL, credited_ms BIGINT);
CREATE UNIQUE INDEX idx_topup_orders_session_id ON topup_orders (session_id);
CREATE UNIQUE INDEX idx_topup_orders_payment_intent ON topup_orders (payment_intent);
CREATE TABLE stripe_events (id TEXT PRIMARY KEY, event_type TEXT NOT NULL, received_ms BIGINT NOT
NULL, outcome TEXT NOT NULL);
CREATE TABLE invoices (id TEXT PRIMARY KEY, seq BIGINT NOT NULL, number TEXT NOT NULL, project_id
TEXT NOT NULL REFERENCES projects(id), month TEXT NOT NULL, total_micro BIGINT NOT NULL, status TEXT
NOT NULL, stripe_invoice_id TEXT, created_ms BIGINT NOT NULL, paid_ms BIGINT, subtotal_micro BIGINT,
tax_micro BIGINT NOT NULL DEFAULT 0, frozen TEXT);
CREATE UNIQUE INDEX idx_invoices_seq ON invoices (seq);
CREATE UNIQUE INDEX idx_invoices_number ON invoices (number);
CREATE UNIQUE INDEX idx_invoices_project_id_month ON invoices (project_id, month);
CREATE INDEX idx_invoices_stripe_invoice_id ON invoices (stripe_invoice_id);
CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE holds (id TEXT PRIMARY KEY, project_id TEXT NOT NULL, key_id TEXT NOT NULL, micro
BIGINT NOT NULL, wallet BIGINT NOT NULL, kind TEXT NOT NULL DEFAULT 'request', status TEXT NOT NULL
DEFAULT 'open', price_card TEXT, created_ms BIGINT NOT NULL, resolved_ms BIGINT, expires_ms BIGINT,
rowid BIGINT GENERATED ALWAYS AS IDENTITY);
CREATE INDEX idx_holds_open ON holds (status) WHERE status = 'open';
CREATE INDEX idx_requests_pending ON requests (status) WHERE status = 'pending';
CREATE TABLE webhook_endpoints (id TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES
projects(id), url TEXT NOT NULL, events TEXT NOT NULL, description TEXT, secret TEXT NOT NULL,
prev_secret TEXT, prev_secret_until_ms BIGINT, status TEXT NOT NULL DEFAULT 'enabled', created_ms
BIGINT NOT NULL, failing_since_ms BIGINT, paused_until_ms BIGINT, disabled_ms BIGINT,
disabled_reason TEXT, deleted_ms BIGINT, rowid BIGINT GENERATED ALWAYS AS IDENTITY);
CREATE INDEX idx_webhook_endpoints_project_id ON webhook_endpoints (project_id);
CREATE TABLE webhook_deliveries (id TEXT PRIMARY KEY, event_id TEXT NOT NULL REFERENCES outbox(id),
endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints(id), project_id TEXT NOT NULL, event_type
TEXT NOT NULL, event_ms BIGINT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', attempts BIGINT NOT
NULL DEFAULT 0, last_attempt_ms BIGINT, last_status_code BIGINT, last_error TEXT, delivered_ms
BIGINT, rowid BIGINT GENERATED ALWAYS AS IDENTITY);
CREATE UNIQUE INDEX idx_webhook_deliveries_event_id_endpoint_id ON webhook_deliveries (event_id,
endpoint_id);
CREATE INDEX idx_webhook_deliveries_endpoint_id_event_ms ON webhook_deliveries (endpoint_id,
event_ms);
CREATE INDEX idx_webhook_deliveries_status_event_ms ON webhook_deliveries (status, event_ms);
CREATE INDEX idx_webhook_deliveries_pending ON webhook_deliveries (endpoint_id, event_ms) WHERE
status = 'pending';
CREATE TABLE webhook_attempts (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, delivery_id
TEXT NOT NULL REFERENCES webhook_deliveries(id), number BIGINT NOT NULL, started_ms BIGINT NOT NULL,
latency_ms BIGINT NOT NULL, ok BIGINT NOT NULL, response_code BIGINT, response_body TEXT, error
TEXT);
CREATE INDEX idx_webhook_attempts_delivery_id_number ON webhook_attempts (delivery_id, number);
CREATE TABLE usage_hours (project_id TEXT NOT NULL, hour_ms BIGINT NOT NULL, key_id TEXT NOT NULL,
model TEXT NOT NULL, requests BIGINT NOT NULL DEFAULT 0, errors BIGINT NOT NULL DEFAULT 0,
input_tokens BIGINT NOT NULL DEFAULT 0, output_tokens BIGINT NOT NULL DEFAULT 0, cached_tokens
BIGINT NOT NULL DEFAULT 0, cost_micro BIGINT NOT NULL DEFAULT 0, b00 BIGINT NOT NULL DEFAULT 0, b01
BIGINT NOT NULL DEFAULT 0, b02 BIGINT NOT NULL DEFAULT 0, b03 BIGINT NOT NULL DEFAULT 0, b04 BIGINT
NOT NULL DEFAULT 0, b05 BIGINT NOT NULL DEFAULT 0, b06 BIGINT NOT NULL DEFAULT 0, b07 BIGINT NOT
NULL DEFAULT 0, b08 BIGINT NOT NULL DEFAULT 0, b09 BIGINT NOT NULL DEFAULT 0, b10 BIGINT NOT NULL
DEFAULT 0, b11 BIGINT NOT NULL DEFAULT 0, b12 BIGINT NOT NULL DEFAULT 0, b13 BIGINT NOT NULL DEFAULT
0, b14 BIGINT NOT NULL DEFAULT 0, b15 BIGINT NOT NULL DEFAULT 0, b16 BIGINT NOT NULL DEFAULT 0, b17
BIGINT NOT NULL DEFAULT 0, b18 BIGINT NOT NULL DEFAULT 0, b19 BIGINT NOT NULL DEFAULT 0, b20 BIGINT
NOT NULL DEFAULT 0, b21 BIGINT NOT NULL DEFAULT 0, b22 BIGINT NOT NULL DEFAULT 0, b23 BIGINT NOT
NULL DEFAULT 0, b24 BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (project_id, hour_ms, key_id, model));
CREATE INDEX idx_requests_project_started ON requests (project_id, started_ms);
CREATE INDEX idx_requests_project_ended ON requests (project_id, ended_ms);
CREATE TABLE idempotency (project_id TEXT NOT NULL, key TEXT NOT NULL, body_sha256 TEXT NOT NULL,
request_id TEXT NOT NULL, status BIGINT NOT NULL, headers TEXT NOT NULL, stream BIGINT NOT NULL,
body BYTEA NOT NULL, created_ms BIGINT NOT NULL, expires_ms BIGINT NOT NULL, PRIMARY KEY
(project_id, key));
CREATE INDEX idx_idempotency_expires ON idempotency (expires_ms);
CREATE TABLE usage_days (project_id TEXT NOT NULL, day_ms BIGINT NOT NULL, key_id TEXT NOT NULL,
model TEXT NOT NULL, requests BIGINT NOT NULL DEFAULT 0, errors BIGINT NOT NULL DEFAULT 0,
input_tokens BIGINT NOT NULL DEFAULT 0, output_tokens BIGINT NOT NULL DEFAULT 0, cached_tokens
BIGINT NOT NULL DEFAULT 0, cost_micro BIGINT NOT NULL DEFAULT 0, b00 BIGINT NOT NULL DEFAULT 0, b01
BIGINT NOT NULL DEFAULT 0, b02 BIGINT NOT NULL DEFAULT 0, b03 BIGINT NOT NULL DEFAULT 0, b04 BIGINT
NOT NULL DEFAULT 0, b05 BIGINT NOT NULL DEFAULT 0, b06 BIGINT NOT NULL DEFAULT 0, b07 BIGINT NOT
NULL DEFAULT 0, b08 BIGINT NOT NULL DEFAULT 0, b09 BIGINT NOT NULL DEFAULT 0, b10 BIGINT NOT NULL
DEFAULT 0, b11 BIGINT NOT NULL DEFAULT 0, b12 BIGINT NOT NULL DEFAULT 0, b13 BIGINT NOT NULL DEFAULT
0, b14 BIGINT NOT NULL DEFAULT 0, b15 BIGINT NOT NULL DEFAULT 0, b16 BIGINT NOT NULL DEFAULT 0, b17
BIGINT NOT NULL DEFAULT 0, b18 BIGINT NOT NULL DEFAULT 0, b19 BIGINT NOT NULL DEFAULT 0, b20 BIGINT
NOT NULL DEFAULT 0, b21 BIGINT NOT NULL DEFAULT 0, b22 BIGINT NOT NULL DEFAULT 0, b23 BIGINT NOT
NULL DEFAULT 0, b24 BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (project_id, day_ms, key_id, model));
CREATE TABLE files (id TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id), purpose
TEXT NOT NULL, filename TEXT NOT NULL, bytes BIGINT NOT NULL, content_type TEXT NOT NULL, sha256
TEXT NOT NULL, source TEXT NOT NULL, request_id TEXT, created_ms BIGINT NOT NULL, deleted_ms BIGINT,
rowid BIGINT GENERATED ALWAYS AS IDENTITY);
CREATE INDEX idx_files_live ON files (project_id, created_ms) WHERE deleted_ms IS NULL;
CREATE TABLE jobs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, project_id TEXT NOT NULL REFERENCES
projects(id), key_id TEXT NOT NULL, request_id TEXT NOT NULL, client_request_id TEXT, model TEXT NOT
NULL, target TEXT, upstream_id TEXT, status TEXT NOT NULL DEFAULT 'queued', progress BIGINT DEFAULT
0, body TEXT NOT NULL, seconds BIGINT, size TEXT, base_url TEXT, result_file_id TEXT, error TEXT,
submits BIGINT DEFAULT 0, created_ms BIGINT NOT NULL, updated_ms BIGINT, deadline_ms BIGINT,
completed_ms BIGINT, deleted_ms BIGINT, rowid BIGINT GENERATED ALWAYS AS IDENTITY);
CREATE INDEX idx_jobs_project_id_kind_created_ms ON jobs (project_id, kind, created_ms);
CREATE INDEX idx_jobs_active ON jobs (status) WHERE status IN ('queued', 'in_progress');
"""

APPEND_ONLY = """
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'ledger is append-only'; END $$;
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger EXECUTE FUNCTION ledger_append_only();
"""

FLEET = """
CREATE TABLE instances (id TEXT PRIMARY KEY, host TEXT NOT NULL, pid BIGINT NOT NULL, started_ms BIGINT NOT NULL,
renewed_ms BIGINT NOT NULL);
CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_ms BIGINT NOT NULL);
ALTER TABLE requests ADD COLUMN owner TEXT DEFAULT current_setting('gateway.instance', true);
ALTER TABLE holds ADD COLUMN owner TEXT DEFAULT current_setting('gateway.instance', true);
CREATE INDEX idx_requests_pending_owner ON requests (owner) WHERE status = 'pending';
CREATE TABLE request_bodies (request_id TEXT PRIMARY KEY, created_ms BIGINT NOT NULL, request BYTEA,
response BYTEA, request_truncated BIGINT NOT NULL DEFAULT 0, response_truncated BIGINT NOT NULL DEFAULT 0,
bytes BIGINT NOT NULL);
CREATE INDEX idx_request_bodies_created ON request_bodies (created_ms);
"""

FILE_CHUNKS = """
CREATE TABLE file_chunks (file_id TEXT NOT NULL, seq INTEGER NOT NULL, data BYTEA NOT NULL, created_ms BIGINT
NOT NULL, PRIMARY KEY (file_id, seq));
ALTER TABLE file_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
"""

MIGRATIONS: list[tuple[str, str]] = [
    ("001_baseline", BASELINE),
    ("pg_001_append_only", APPEND_ONLY),
    ("pg_002_fleet", FLEET),
    ("pg_003_file_chunks", FILE_CHUNKS),
]
LOCK_ID = 7_150_015  # the advisory lock that makes concurrent starts migrate one at a time


def migrate(conn: Any) -> list[str]:
    """Apply the migrations not yet recorded, each in its own transaction, under an advisory lock (many
    processes may start at once). `conn` is a psycopg connection in autocommit mode. Returns what ran."""
    applied: list[str] = []
    conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_ID,))
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_ms BIGINT NOT NULL)")
        done = {row[0] for row in conn.execute("SELECT name FROM _migrations").fetchall()}
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            with conn.transaction():
                conn.execute(sql)
                conn.execute("INSERT INTO _migrations (name, applied_ms) VALUES (%s, %s)", (name, now_ms()))
            log.info("postgres migration %s applied", name)
            applied.append(name)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_ID,))
    return applied
