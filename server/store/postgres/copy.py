"""`gatewayctl migrate-store`: copy a SQLite store (gateway.db and bodies.db) and the stored files' bytes
(`<data_dir>/files/`) into an empty PostgreSQL database, in one transaction, then verify the copy: row
counts per table, every project's balance, the ledger's chains checked on the target with the
installation's key (as `ledger verify` does), and every live file read back from the target with its
size and SHA-256 equal to its row's.

Rows are copied in insertion order (SQLite's rowid), so PostgreSQL's `rowid` identity gives the same order
(a ledger chain's order); tables go parents first (foreign keys). A target that already holds rows, or a
source not migrated to this version's schema, is refused and nothing is written. Refusals raise
`MigrationRefused` with a one-line message. A live file whose bytes are missing from the data dir, or
do not match its row's size and hash, refuses the copy too (nothing written).
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from server.store.postgres.blobs import CHUNK, copy_chunks, pieces_of
from server.store.postgres.dialect import PgConnection
from server.store.postgres.migrations import migrate
from server.store.sqlite import ledger
from server.store.sqlite.migrations import MIGRATIONS

# Parents before children; tables not named here follow in name order.
ORDER = (
    "projects", "api_keys", "admin_tokens", "requests", "usage", "ledger", "outbox", "holds", "topup_orders",
    "stripe_events", "invoices", "counters", "webhook_endpoints", "webhook_deliveries", "webhook_attempts",
    "files", "jobs", "usage_hours", "usage_days", "idempotency",
)  # fmt: skip
IDENTITIES = {"webhook_attempts": "id"}  # ids given by the source: the target's sequence must follow them


class MigrationRefused(Exception):
    """The copy cannot start (or did not verify); the message is one line."""


def _tables(conn: sqlite3.Connection) -> list[str]:
    names = {
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != '_migrations'"
        )
    }
    return [t for t in ORDER if t in names] + sorted(names - set(ORDER))


def _open_source(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise MigrationRefused(f"no SQLite database at {path} (the config's data dir)")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    missing = [name for name, _ in MIGRATIONS if name not in done]
    if missing:
        conn.close()
        raise MigrationRefused(f"{path} is not at this version's schema (missing {missing[0]}): run gatewayctl init")
    return conn


def _copy_table(source: sqlite3.Connection, target: psycopg.Connection[Any], table: str) -> int:
    without_rowid = (
        "WITHOUT ROWID"
        in (source.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0] or "").upper()
    )
    cur = source.execute(f"SELECT * FROM {table}" + ("" if without_rowid else " ORDER BY rowid"))
    columns = [d[0] for d in cur.description]
    copied = 0
    with target.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        while batch := cur.fetchmany(5000):
            for row in batch:
                copy.write_row(row)
            copied += len(batch)
    return copied


def _refuse_non_empty(target: psycopg.Connection[Any], tables: list[str]) -> None:
    for table in tables:
        if target.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()[0]:  # type: ignore[index]
            raise MigrationRefused(f"the target database is not empty (table {table} has rows): use an empty one")


def _live_files(source: sqlite3.Connection) -> list[tuple[str, str, int, str]]:
    return source.execute(
        "SELECT id, project_id, bytes, sha256 FROM files WHERE deleted_ms IS NULL ORDER BY rowid"
    ).fetchall()


def _hashed(pieces: Iterator[bytes], digest: Any) -> Iterator[bytes]:
    for piece in pieces:
        digest.update(piece)
        yield piece


def _copy_files(source: sqlite3.Connection, target: psycopg.Connection[Any], files_root: Path) -> int:
    """Each live file's bytes from the data dir into `file_chunks`, checked against its row on the way."""
    copied = 0
    for file_id, project_id, size, sha256 in _live_files(source):
        path = files_root / project_id / file_id
        if not path.is_file():
            raise MigrationRefused(f"file {file_id} of project {project_id} has no bytes at {path}")
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            written = copy_chunks(target, file_id, _hashed(pieces_of(handle), digest), int(time.time() * 1000))
        if written != size or digest.hexdigest() != sha256:
            raise MigrationRefused(f"file {file_id}: {path} does not match its row ({written} of {size} bytes)")
        copied += 1
    return copied


def _verify_files(source: sqlite3.Connection, target: PgConnection) -> tuple[dict[str, int], list[str]]:
    """Every live file read back from the target (a chunk at a time): its size and hash equal its row's."""
    problems: list[str] = []
    found = total = 0
    live = _live_files(source)
    for file_id, _, size, sha256 in live:
        digest, length = hashlib.sha256(), 0
        with target.raw.transaction(), target.raw.cursor(name="verify_file") as cur:
            cur.itersize = max(1, (8 << 20) // CHUNK)
            cur.execute("SELECT data FROM file_chunks WHERE file_id = %s ORDER BY seq", (file_id,))
            for (data,) in cur:
                digest.update(data)
                length += len(data)
        if length != size or digest.hexdigest() != sha256:
            problems.append(f"file {file_id}: {length} bytes in PostgreSQL, {size} in its row, or its hash differs")
        else:
            found += 1
            total += length
    return {"source": len(live), "target": found, "bytes": total}, problems


def copy_store(source_path: Path, bodies_path: Path | None, url: str, files_root: Path | None = None) -> dict[str, int]:
    """Copy every table (and the bodies, and the files' bytes from `files_root`) in one transaction;
    returns rows copied per table."""
    source = _open_source(source_path)
    try:
        tables = _tables(source)
        try:
            target = psycopg.connect(url, autocommit=True, connect_timeout=10, application_name="migrate-store")
        except psycopg.Error as exc:
            raise MigrationRefused(f"cannot connect to {safe_url(url)}: {_first_line(exc)}") from None
        with target:
            migrate(target)
            _refuse_non_empty(target, [*tables, "request_bodies", "file_chunks"])
            copied: dict[str, int] = {}
            with target.transaction():
                for table in tables:
                    copied[table] = _copy_table(source, target, table)
                if bodies_path is not None and bodies_path.is_file():
                    bodies = sqlite3.connect(f"file:{bodies_path}?mode=ro", uri=True)
                    try:
                        copied["request_bodies"] = _copy_table(bodies, target, "request_bodies")
                    finally:
                        bodies.close()
                if files_root is not None:
                    copied["file_blobs"] = _copy_files(source, target, files_root)
                for table, column in IDENTITIES.items():
                    target.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                        f" GREATEST((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
                    )
        return copied
    finally:
        source.close()


def verify_copy(
    source_path: Path, bodies_path: Path | None, url: str, chain: ledger.Chain, files: bool = False
) -> dict[str, Any]:
    """Compare the target with the source: counts per table, balances, the ledger verified on the target,
    and (`files`) every live file's bytes."""
    source = _open_source(source_path)
    target = PgConnection(psycopg.connect(url, autocommit=True, connect_timeout=10))
    problems: list[str] = []
    try:
        counts: dict[str, dict[str, int]] = {}
        for table in _tables(source):
            counts[table] = {
                "source": source.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0],
                "target": target.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0],
            }
        if bodies_path is not None and bodies_path.is_file():
            bodies = sqlite3.connect(f"file:{bodies_path}?mode=ro", uri=True)
            try:
                counts["request_bodies"] = {
                    "source": bodies.execute("SELECT COUNT(*) FROM request_bodies").fetchone()[0],
                    "target": target.execute("SELECT COUNT(*) FROM request_bodies").fetchone()[0],
                }
            finally:
                bodies.close()
        problems += [
            f"{t}: {c['source']} rows in SQLite, {c['target']} in PostgreSQL"
            for t, c in counts.items()
            if c["source"] != c["target"]
        ]
        lite_balances = dict(source.execute("SELECT id, balance_micro FROM projects").fetchall())
        pg_balances = dict(target.execute("SELECT id, balance_micro FROM projects").fetchall())
        problems += [f"project {p}: balance differs" for p in lite_balances if lite_balances[p] != pg_balances.get(p)]
        file_counts: dict[str, int] = {}
        if files:
            file_counts, file_problems = _verify_files(source, target)
            problems += file_problems
        checks = ledger.verify(target, chain)
        problems += [f"ledger of {c['project_id']}: {c['problems'][0]}" for c in checks if not c["ok"]]
        return {
            "ok": not problems,
            "problems": problems,
            "tables": counts,
            "files": file_counts,
            "projects": len(checks),
            "ledger_entries": sum(c["entries"] for c in checks),
            "balance_micro": sum(pg_balances.values()),
        }
    finally:
        source.close()
        target.close()


def migrate_store(
    source_path: Path, bodies_path: Path | None, url: str, chain: ledger.Chain, files_root: Path | None = None
) -> dict[str, Any]:
    """Copy, then verify; raises MigrationRefused when the copy cannot start or does not verify."""
    started = time.monotonic()
    try:
        copied = copy_store(source_path, bodies_path, url, files_root)
    except (psycopg.Error, sqlite3.Error) as exc:
        raise MigrationRefused(f"the copy failed, nothing was written: {_first_line(exc)}") from None
    try:
        report = verify_copy(source_path, bodies_path, url, chain, files=files_root is not None)
    except (psycopg.Error, sqlite3.Error) as exc:
        raise MigrationRefused(f"the copy was written but could not be verified: {_first_line(exc)}") from None
    report["rows"] = sum(n for table, n in copied.items() if table != "file_blobs")
    report["seconds"] = round(time.monotonic() - started, 2)
    if not report["ok"]:
        raise MigrationRefused(f"the copy does not verify: {report['problems'][0]}")
    return report


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, userinfo = head.partition("://")
    return f"{scheme}://{userinfo.split(':')[0]}@{tail}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
