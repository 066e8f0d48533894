"""The fan-out of an outbox event to the webhook endpoints that subscribe to it, inside the transaction
that writes the event: the event and its deliveries survive a crash together, or neither does."""

from __future__ import annotations

import sqlite3

NEW_DELIVERY_ID = "'whd_' || lower(hex(randomblob(8)))"  # SQL: a fresh delivery id per row inserted


def fan_out(conn: sqlite3.Connection, event_id: str, event_type: str, project_id: str | None, when_ms: int) -> None:
    """One pending delivery per enabled endpoint of the event's project subscribed to its type."""
    if project_id is None:
        return
    conn.execute(
        "INSERT OR IGNORE INTO webhook_deliveries (id, event_id, endpoint_id, project_id, event_type, event_ms)"
        f" SELECT {NEW_DELIVERY_ID}, ?, e.id, e.project_id, ?, ? FROM webhook_endpoints e"
        " WHERE e.project_id = ? AND e.status = 'enabled'"
        " AND EXISTS (SELECT 1 FROM json_each(e.events) WHERE json_each.value = ?)",
        (event_id, event_type, when_ms, project_id, event_type),
    )
