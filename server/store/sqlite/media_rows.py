"""The file and job rows written inside other transactions: a job's result file and final state go in
its request's closing transaction (records.close), so a job ends exactly once, with its charge."""

from __future__ import annotations

import sqlite3

import orjson

from server.store.media_protocol import JobEnd, StoredFile


def insert_file(conn: sqlite3.Connection, stored: StoredFile) -> None:
    conn.execute(
        "INSERT INTO files (id, project_id, purpose, filename, bytes, content_type, sha256, source, request_id,"
        " created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            stored.id,
            stored.project_id,
            stored.purpose,
            stored.filename,
            stored.bytes,
            stored.content_type,
            stored.sha256,
            stored.source,
            stored.request_id,
            stored.created_ms,
        ),
    )


def finish_job(conn: sqlite3.Connection, end: JobEnd) -> None:
    """A job's final state (and its result file), inside the closing transaction; a job ended twice aborts it."""
    if end.result is not None:
        insert_file(conn, end.result)
    cur = conn.execute(
        "UPDATE jobs SET status = ?, progress = COALESCE(?, progress), result_file_id = ?, error = ?,"
        " completed_ms = ?, updated_ms = ? WHERE id = ? AND status IN ('queued', 'in_progress')",
        (
            end.status,
            100 if end.status == "completed" else None,
            end.result.id if end.result is not None else None,
            orjson.dumps(end.error).decode() if end.error is not None else None,
            end.ended_ms,
            end.ended_ms,
            end.job_id,
        ),
    )
    if cur.rowcount != 1:
        raise LookupError(f"job {end.job_id} already ended")
