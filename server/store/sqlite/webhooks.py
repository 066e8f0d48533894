"""SQL for webhooks: endpoints, the fan-out of an outbox event to the endpoints that subscribe to it,
the deliveries the worker reads in event order, and every attempt. Writes go through the writer (one
transaction each); reads use their own read-only connection."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from server.store.protocol import Event
from server.store.sqlite import records
from server.store.sqlite.catalog import rows
from server.store.sqlite.db import Writer
from server.store.sqlite.fanout import NEW_DELIVERY_ID
from server.store.sqlite.reads import Reader
from server.store.webhook_protocol import (
    CANCELLED,
    DELETED,
    DISABLED,
    ENABLED,
    FAILED,
    PENDING,
    Delivery,
    LaneUpdate,
    WebhookEndpoint,
)


def _endpoint(row: dict[str, Any]) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row["id"],
        project_id=row["project_id"],
        url=row["url"],
        events=tuple(orjson.loads(row["events"])),
        description=row["description"],
        secret=row["secret"],
        status=row["status"],
        created_ms=row["created_ms"],
        prev_secret=row["prev_secret"],
        prev_secret_until_ms=row["prev_secret_until_ms"],
        failing_since_ms=row["failing_since_ms"],
        paused_until_ms=row["paused_until_ms"],
        disabled_ms=row["disabled_ms"],
        disabled_reason=row["disabled_reason"],
    )


def _find(conn: sqlite3.Connection, endpoint_id: str) -> WebhookEndpoint | None:
    found = rows(conn, "SELECT * FROM webhook_endpoints WHERE id = ? AND status != 'deleted'", (endpoint_id,))
    return _endpoint(found[0]) if found else None


def _insert_endpoint(endpoint: WebhookEndpoint) -> Any:
    def op(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO webhook_endpoints (id, project_id, url, events, description, secret, status, created_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                endpoint.id,
                endpoint.project_id,
                endpoint.url,
                orjson.dumps(list(endpoint.events)).decode(),
                endpoint.description,
                endpoint.secret,
                endpoint.status,
                endpoint.created_ms,
            ),
        )

    return op


def _delete(endpoint_id: str, when_ms: int) -> Any:
    def op(conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE webhook_endpoints SET status = ?, deleted_ms = ? WHERE id = ? AND status != ?",
            (DELETED, when_ms, endpoint_id, DELETED),
        )
        conn.execute(
            "UPDATE webhook_deliveries SET status = ?, last_error = 'endpoint deleted' WHERE endpoint_id = ?"
            " AND status = ?",
            (CANCELLED, endpoint_id, PENDING),
        )

    return op


def _changed(endpoint_id: str, sql: str, args: tuple[Any, ...]) -> Any:
    """Update an endpoint that is not deleted and return it as it is now (LookupError if there is none)."""

    def op(conn: sqlite3.Connection) -> WebhookEndpoint:
        conn.execute(f"UPDATE webhook_endpoints SET {sql} WHERE id = ? AND status != 'deleted'", (*args, endpoint_id))
        found = _find(conn, endpoint_id)
        if found is None:
            raise LookupError(f"no webhook endpoint {endpoint_id}")
        return found

    return op


def _record_round(update: LaneUpdate) -> Any:
    def op(conn: sqlite3.Connection) -> None:
        for attempt in update.attempts:
            conn.execute(
                "INSERT INTO webhook_attempts (delivery_id, number, started_ms, latency_ms, ok, response_code,"
                " response_body, error) VALUES (?, (SELECT COUNT(*) + 1 FROM webhook_attempts WHERE delivery_id = ?),"
                " ?, ?, ?, ?, ?, ?)",
                (
                    attempt.delivery_id,
                    attempt.delivery_id,
                    attempt.started_ms,
                    attempt.latency_ms,
                    int(attempt.ok),
                    attempt.response_code,
                    attempt.response_body,
                    attempt.error,
                ),
            )
            conn.execute(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, status = ?, last_attempt_ms = ?,"
                " last_status_code = ?, last_error = ?, delivered_ms = CASE WHEN ? THEN ? ELSE delivered_ms END"
                " WHERE id = ? AND status = ?",
                (
                    attempt.delivery_status,
                    attempt.started_ms,
                    attempt.response_code,
                    attempt.error,
                    int(attempt.ok),
                    attempt.started_ms + attempt.latency_ms,
                    attempt.delivery_id,
                    PENDING,
                ),
            )
        conn.execute(
            "UPDATE webhook_endpoints SET failing_since_ms = ?, paused_until_ms = ? WHERE id = ? AND status = ?",
            (update.failing_since_ms, update.paused_until_ms, update.endpoint_id, ENABLED),
        )
        if update.disabled_reason is not None:
            conn.execute(
                "UPDATE webhook_endpoints SET status = ?, disabled_ms = ?, disabled_reason = ? WHERE id = ?"
                " AND status = ?",
                (DISABLED, update.when_ms, update.disabled_reason, update.endpoint_id, ENABLED),
            )
            conn.execute(
                "UPDATE webhook_deliveries SET status = ?, last_error = 'endpoint disabled' WHERE endpoint_id = ?"
                " AND status = ?",
                (FAILED, update.endpoint_id, PENDING),
            )

    return op


def _test_event(event: Event, endpoint_id: str) -> Any:
    def op(conn: sqlite3.Connection) -> str:
        records.insert_event(conn, event.id, event.type, event.project_id, dict(event.payload), event.created_ms)
        found = conn.execute(
            "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, project_id, event_type, event_ms)"
            f" VALUES ({NEW_DELIVERY_ID}, ?, ?, ?, ?, ?) RETURNING id",
            (event.id, endpoint_id, event.project_id, event.type, event.created_ms),
        ).fetchone()
        return str(found[0])

    return op


def _redeliver(delivery_id: str) -> Any:
    def op(conn: sqlite3.Connection) -> None:
        found = conn.execute(
            "UPDATE webhook_deliveries SET status = ?, attempts = 0 WHERE id = ? RETURNING endpoint_id",
            (PENDING, delivery_id),
        ).fetchone()
        if found is None:
            raise LookupError(f"no webhook delivery {delivery_id}")
        conn.execute("UPDATE webhook_endpoints SET paused_until_ms = NULL WHERE id = ?", (found[0],))

    return op


_DELIVERY_COLUMNS = (
    "d.id, d.event_id, d.endpoint_id, d.project_id, d.event_type, d.event_ms, d.status, d.attempts,"
    " d.last_attempt_ms, d.last_status_code, d.last_error, d.delivered_ms, e.url AS endpoint_url"
)


def _lane(conn: sqlite3.Connection, endpoint_id: str, limit: int) -> tuple[WebhookEndpoint | None, list[Delivery]]:
    endpoint = _find(conn, endpoint_id)
    if endpoint is None or endpoint.status != ENABLED:
        return endpoint, []
    found = rows(
        conn,
        "SELECT d.*, o.payload FROM webhook_deliveries d JOIN outbox o ON o.id = d.event_id"
        " WHERE d.endpoint_id = ? AND d.status = ? ORDER BY d.event_ms, d.rowid LIMIT ?",
        (endpoint_id, PENDING, limit),
    )
    return endpoint, [
        Delivery(
            id=row["id"],
            event_id=row["event_id"],
            event_type=row["event_type"],
            endpoint_id=row["endpoint_id"],
            project_id=row["project_id"],
            event_ms=row["event_ms"],
            status=row["status"],
            attempts=row["attempts"],
            payload=orjson.loads(row["payload"]),
        )
        for row in found
    ]


def _deliveries(
    conn: sqlite3.Connection, project_id: str | None, endpoint_id: str | None, status: str | None, limit: int
) -> list[dict[str, Any]]:
    where, args = [], []
    for column, value in (("d.project_id", project_id), ("d.endpoint_id", endpoint_id), ("d.status", status)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return rows(
        conn,
        f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id"
        f" {clause} ORDER BY d.event_ms DESC, d.rowid DESC LIMIT ?",
        (*args, limit),
    )


def _delivery(conn: sqlite3.Connection, delivery_id: str) -> dict[str, Any] | None:
    found = rows(
        conn,
        f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id"
        " WHERE d.id = ?",
        (delivery_id,),
    )
    if not found:
        return None
    attempts = rows(
        conn,
        "SELECT number, started_ms, latency_ms, ok, response_code, response_body, error FROM webhook_attempts"
        " WHERE delivery_id = ? ORDER BY number",
        (delivery_id,),
    )
    return {**found[0], "attempt_log": [{**a, "ok": bool(a["ok"])} for a in attempts]}


def _purge(before_ms: int) -> Any:
    """Finished deliveries of events older than `before_ms` (with their attempts), then the events older
    than that with no delivery left; returns how many events went."""

    def op(conn: sqlite3.Connection) -> int:
        finished = "SELECT id FROM webhook_deliveries WHERE event_ms < ? AND status != 'pending'"
        conn.execute(f"DELETE FROM webhook_attempts WHERE delivery_id IN ({finished})", (before_ms,))
        conn.execute("DELETE FROM webhook_deliveries WHERE event_ms < ? AND status != 'pending'", (before_ms,))
        return conn.execute(
            "DELETE FROM outbox WHERE created_ms < ?"
            " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = outbox.id)",
            (before_ms,),
        ).rowcount

    return op


class SqliteWebhooks:
    """The WebhookStore on SQLite: writes through the store's writer, reads on read-only connections."""

    def __init__(self, writer: Writer, reader: Reader) -> None:
        self._writer = writer
        self._reader = reader

    async def create_endpoint(self, endpoint: WebhookEndpoint) -> None:
        await self._writer.run(_insert_endpoint(endpoint))

    async def endpoints(self, project_id: str | None = None) -> list[WebhookEndpoint]:
        sql = "SELECT * FROM webhook_endpoints WHERE status != 'deleted'"
        args: tuple[Any, ...] = ()
        if project_id is not None:
            sql, args = sql + " AND project_id = ?", (project_id,)

        def read(conn: sqlite3.Connection) -> list[WebhookEndpoint]:
            return [_endpoint(row) for row in rows(conn, sql + " ORDER BY created_ms, rowid", args)]

        return await self._reader.call(read)

    async def endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        return await self._reader.call(lambda conn: _find(conn, endpoint_id))

    async def delete_endpoint(self, endpoint_id: str, when_ms: int) -> None:
        await self._writer.run(_delete(endpoint_id, when_ms))

    async def rotate_secret(
        self, endpoint_id: str, secret: str, prev_secret: str, prev_until_ms: int
    ) -> WebhookEndpoint:
        sql = "secret = ?, prev_secret = ?, prev_secret_until_ms = ?"
        return await self._writer.run(_changed(endpoint_id, sql, (secret, prev_secret, prev_until_ms)))

    async def enable_endpoint(self, endpoint_id: str) -> WebhookEndpoint:
        sql = "status = 'enabled', failing_since_ms = NULL, paused_until_ms = NULL, disabled_ms = NULL"
        return await self._writer.run(_changed(endpoint_id, sql + ", disabled_reason = NULL", ()))

    async def due_endpoints(self, now_ms: int) -> list[WebhookEndpoint]:
        def read(conn: sqlite3.Connection) -> list[WebhookEndpoint]:
            found = rows(
                conn,
                "SELECT e.* FROM webhook_endpoints e WHERE e.status = ? AND COALESCE(e.paused_until_ms, 0) <= ?"
                " AND EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.status = ?)",
                (ENABLED, now_ms, PENDING),
            )
            return [_endpoint(row) for row in found]

        return await self._reader.call(read)

    async def lane(self, endpoint_id: str, limit: int) -> tuple[WebhookEndpoint | None, list[Delivery]]:
        return await self._reader.call(lambda conn: _lane(conn, endpoint_id, limit))

    async def record_round(self, update: LaneUpdate) -> None:
        await self._writer.run(_record_round(update))

    async def add_test_event(self, event: Event, endpoint_id: str) -> str:
        return str(await self._writer.run(_test_event(event, endpoint_id)))

    async def deliveries(
        self,
        *,
        project_id: str | None = None,
        endpoint_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        return await self._reader.call(lambda conn: _deliveries(conn, project_id, endpoint_id, status, limit))

    async def delivery(self, delivery_id: str) -> dict[str, Any] | None:
        return await self._reader.call(lambda conn: _delivery(conn, delivery_id))

    async def redeliver(self, delivery_id: str) -> None:
        await self._writer.run(_redeliver(delivery_id))

    async def purge(self, before_ms: int) -> int:
        return int(await self._writer.run(_purge(before_ms)))
