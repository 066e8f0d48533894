"""SQL for stored files and asynchronous jobs (server/store/media_protocol.py). Writes go through the
writer (one transaction each); reads use the read-only connection. A job's end is written by
`media_rows.finish_job`, inside its request's closing transaction (records.close)."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from server.store.media_protocol import ACTIVE, Job, Page, StoredFile
from server.store.protocol import HoldRecord
from server.store.sqlite import records
from server.store.sqlite.catalog import rows
from server.store.sqlite.db import Writer
from server.store.sqlite.media_rows import insert_file
from server.store.sqlite.reads import Reader

_JOB_COLUMNS = (
    "status",
    "progress",
    "target",
    "upstream_id",
    "submits",
    "updated_ms",
    "error",
)


def _file(row: dict[str, Any]) -> StoredFile:
    return StoredFile(**{name: row[name] for name in StoredFile.__slots__})  # type: ignore[attr-defined]


def _job(row: dict[str, Any]) -> Job:
    values = {name: row[name] for name in Job.__slots__}  # type: ignore[attr-defined]
    values["body"] = orjson.loads(row["body"])
    values["error"] = orjson.loads(row["error"]) if row["error"] else None
    values["base_url"] = row["base_url"] or ""
    return Job(**values)


def _page(table: str, where: str, args: list[Any], page: Page) -> tuple[str, list[Any]]:
    """A listing of `table`: the filter, the cursor (`after`: the id listed last), the order by creation,
    and one row more than the limit (it says whether there are more)."""
    direction = "ASC" if page.order == "asc" else "DESC"
    sql = f"SELECT * FROM {table} WHERE {where}"
    if page.after:
        compare = ">" if direction == "ASC" else "<"
        sql += f" AND (created_ms, id) {compare} (SELECT created_ms, id FROM {table} WHERE id = ?)"
        args.append(page.after)
    sql += f" ORDER BY created_ms {direction}, id {direction} LIMIT ?"
    args.append(page.limit + 1)
    return sql, args


class SqliteMedia:
    def __init__(self, writer: Writer, reader: Reader) -> None:
        self._writer = writer
        self._reader = reader

    async def add_file(self, stored: StoredFile) -> None:
        await self._writer.run(lambda conn: insert_file(conn, stored))

    async def find_file(self, file_id: str, project_id: str | None) -> StoredFile | None:
        def read(conn: sqlite3.Connection) -> StoredFile | None:
            found = rows(conn, "SELECT * FROM files WHERE id = ? AND deleted_ms IS NULL", (file_id,))
            if not found or (project_id is not None and found[0]["project_id"] != project_id):
                return None
            return _file(found[0])

        return await self._reader.call(read)

    async def list_files(self, project_id: str, page: Page) -> list[StoredFile]:
        where, args = "project_id = ? AND deleted_ms IS NULL", [project_id]
        purpose = page.filters.get("purpose")
        if purpose:
            where += " AND purpose = ?"
            args.append(purpose)
        sql, args = _page("files", where, args, page)
        return await self._reader.call(lambda conn: [_file(row) for row in rows(conn, sql, tuple(args))])

    async def delete_file(self, project_id: str, file_id: str, when_ms: int) -> StoredFile | None:
        def op(conn: sqlite3.Connection) -> StoredFile | None:
            found = rows(
                conn,
                "SELECT * FROM files WHERE id = ? AND project_id = ? AND deleted_ms IS NULL",
                (file_id, project_id),
            )
            if not found:
                return None
            conn.execute("UPDATE files SET deleted_ms = ? WHERE id = ?", (when_ms, file_id))
            return _file(found[0])

        return await self._writer.run(op)

    async def storage_used(self) -> dict[str, int]:
        sql = "SELECT project_id, SUM(bytes) FROM files WHERE deleted_ms IS NULL GROUP BY project_id"
        return await self._reader.call(lambda conn: {p: int(n) for p, n in conn.execute(sql)})

    async def create_job(self, job: Job, hold: HoldRecord) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO jobs (id, kind, project_id, key_id, request_id, client_request_id, model, status,"
                " progress, body, seconds, size, base_url, submits, created_ms, updated_ms, deadline_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
                (
                    job.id,
                    job.kind,
                    job.project_id,
                    job.key_id,
                    job.request_id,
                    job.client_request_id,
                    job.model,
                    job.status,
                    job.progress,
                    orjson.dumps(job.body).decode(),
                    job.seconds,
                    job.size,
                    job.base_url,
                    job.created_ms,
                    job.created_ms,
                    job.deadline_ms,
                ),
            )
            records.insert_hold(conn, hold, job.created_ms)

        await self._writer.run(op)

    async def update_job(self, job_id: str, **values: Any) -> None:
        unknown = set(values) - set(_JOB_COLUMNS)
        if unknown:
            raise ValueError(f"not a running job's column: {sorted(unknown)}")
        if "error" in values and values["error"] is not None:
            values["error"] = orjson.dumps(values["error"]).decode()
        assignments = ", ".join(f"{name} = ?" for name in values)
        args = (*values.values(), job_id)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"UPDATE jobs SET {assignments} WHERE id = ? AND status IN ('queued', 'in_progress')",
                args,
            )

        await self._writer.run(op)

    async def active_jobs(self) -> list[Job]:
        marks = ", ".join("?" for _ in ACTIVE)
        sql = f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY created_ms"
        return await self._reader.call(lambda conn: [_job(row) for row in rows(conn, sql, ACTIVE)])

    async def find_job(self, job_id: str, project_id: str, kind: str) -> Job | None:
        def read(conn: sqlite3.Connection) -> Job | None:
            found = rows(
                conn,
                "SELECT * FROM jobs WHERE id = ? AND project_id = ? AND kind = ? AND deleted_ms IS NULL",
                (job_id, project_id, kind),
            )
            return _job(found[0]) if found else None

        return await self._reader.call(read)

    async def list_jobs(self, project_id: str, kind: str, page: Page) -> list[Job]:
        sql, args = _page("jobs", "project_id = ? AND kind = ? AND deleted_ms IS NULL", [project_id, kind], page)
        return await self._reader.call(lambda conn: [_job(row) for row in rows(conn, sql, tuple(args))])

    async def delete_job(self, project_id: str, job_id: str, when_ms: int) -> Job | None:
        def op(conn: sqlite3.Connection) -> Job | None:
            found = rows(
                conn,
                "SELECT * FROM jobs WHERE id = ? AND project_id = ? AND deleted_ms IS NULL"
                " AND status IN ('completed', 'failed')",
                (job_id, project_id),
            )
            if not found:
                return None
            conn.execute("UPDATE jobs SET deleted_ms = ? WHERE id = ?", (when_ms, job_id))
            return _job(found[0])

        return await self._writer.run(op)
