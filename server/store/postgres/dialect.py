"""The SQL the shared query modules (server/store/sqlite/*: records, ledger, billing, webhooks, media, …) are
written in, run on PostgreSQL: one query text per operation for both engines, so a rule changed in one
place holds on both, and the Postgres store adds no second copy of the request path's SQL.

`translate` turns a statement in the SQLite dialect those modules use into PostgreSQL's, by a short list of
rules, each for an idiom the modules actually use (a new idiom fails loudly in the store tests that run on
both engines, never silently):

- placeholders: `?` -> `%s`, `:name` -> `%(name)s` (a literal `%` is doubled);
- `INSERT OR IGNORE` -> `ON CONFLICT DO NOTHING`; `INSERT OR REPLACE` -> an upsert on the table's key;
- `/* for update */` (a comment SQLite ignores) -> `FOR UPDATE`: the row lock that serialises a project's
  ledger chain and balance across processes (SQLite's single writer already does);
- `excluded.c` in an upsert's SET, whose bare `c` PostgreSQL calls ambiguous -> qualified with the table;
- the few SQLite functions used: `json_each` (quantities by unit, an endpoint's event list), `date(…,
  'unixepoch')`, a random hex id, and the `bodies.` schema of SQLite's attached bodies database.

`PgConnection` wraps a psycopg connection with the sqlite3 surface those modules call (`execute`,
`executemany`, cursors with `fetchone`/`fetchall`/`rowcount`/`description`), translating on the way, and
hides the columns PostgreSQL adds for itself (`rowid`, `owner`) from `SELECT *`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg.adapt import Loader

HIDDEN = frozenset({"rowid", "owner"})  # columns only the PostgreSQL schema has (insertion order, the process)

# Each table written with INSERT OR REPLACE, and the key it replaces on.
REPLACE_KEYS = {"idempotency": ("project_id", "key"), "request_bodies": ("request_id",)}

_FRAGMENTS = (
    ("/* for update */", "FOR UPDATE"),
    ("'whd_' || lower(hex(randomblob(8)))", "'whd_' || substr(md5(random()::text || clock_timestamp()::text), 1, 16)"),
    ("json_each(u.quantities) q", "jsonb_each_text(u.quantities::jsonb) q"),
    ("SUM(q.value)", "SUM(q.value::bigint)"),
    (
        "EXISTS (SELECT 1 FROM json_each(e.events) WHERE json_each.value = ?)",
        "EXISTS (SELECT 1 FROM jsonb_array_elements_text(e.events::jsonb) AS je(value) WHERE je.value = ?)",
    ),
    ("bodies.request_bodies", "request_bodies"),
)
_CONTROL = {"BEGIN": "BEGIN", "BEGIN IMMEDIATE": "BEGIN", "COMMIT": "COMMIT", "ROLLBACK": "ROLLBACK"}
_DATE = re.compile(r"date\(([\w.]+) / 1000, 'unixepoch'\)")
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_INSERT_INTO = re.compile(r"INSERT INTO (\w+)\s*\(([^)]*)\)")
_UPSERT_SET = re.compile(r"ON CONFLICT \(([^)]*)\) DO UPDATE SET (.*?)(?= RETURNING|$)", re.S)


def _qualify_upsert(sql: str) -> str:
    """`SET c = c + excluded.c`: PostgreSQL wants the existing row's `c` named by its table."""
    insert = _INSERT_INTO.search(sql)
    upsert = _UPSERT_SET.search(sql)
    if insert is None or upsert is None:
        return sql
    table = insert.group(1)
    assignments = []
    for part in upsert.group(2).split(","):
        target, _, value = part.partition("=")
        column = target.strip()
        value = re.sub(rf"(?<![.\w]){re.escape(column)}(?!\w)", f"{table}.{column}", value)
        assignments.append(f"{target}={value}")
    return sql[: upsert.start(2)] + ",".join(assignments) + sql[upsert.end(2) :]


def _or_ignore(sql: str) -> str:
    sql = sql.replace("INSERT OR IGNORE INTO", "INSERT INTO", 1)
    head, sep, tail = sql.partition(" RETURNING ")
    return f"{head} ON CONFLICT DO NOTHING{sep}{tail}"


def _or_replace(sql: str) -> str:
    sql = sql.replace("INSERT OR REPLACE INTO", "INSERT INTO", 1)
    insert = _INSERT_INTO.search(sql)
    if insert is None or insert.group(1) not in REPLACE_KEYS:
        raise ValueError(f"INSERT OR REPLACE on a table without a known key: {sql[:80]}")
    keys = REPLACE_KEYS[insert.group(1)]
    columns = [c.strip() for c in insert.group(2).split(",")]
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in keys)
    return f"{sql} ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"


@functools.lru_cache(maxsize=4096)
def translate(sql: str) -> str:
    """A statement of the shared modules in PostgreSQL's dialect (cached: the modules' texts are constant)."""
    for sqlite_form, pg_form in _FRAGMENTS:
        sql = sql.replace(sqlite_form, pg_form)
    sql = _DATE.sub(r"to_char(to_timestamp(\1 / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')", sql)
    if sql.lstrip().startswith("INSERT OR IGNORE"):
        sql = _or_ignore(sql)
    elif sql.lstrip().startswith("INSERT OR REPLACE"):
        sql = _or_replace(sql)
    elif "excluded." in sql:
        sql = _qualify_upsert(sql)
    sql = sql.replace("%", "%%")
    sql = _NAMED.sub(r"%(\1)s", sql)
    return sql.replace("?", "%s")


class _IntLoader(Loader):
    """NUMERIC as int when it is whole: SUM() of BIGINT columns is NUMERIC in PostgreSQL, an int in SQLite;
    money must stay integer micro-units (a fraction would be a bug: it is kept, never rounded)."""

    def load(self, data: Any) -> Any:
        text = bytes(data).decode()
        if "." in text:
            from decimal import Decimal

            value = Decimal(text)
            return int(value) if value == value.to_integral_value() else value
        return int(text)


def configure(conn: psycopg.Connection[Any]) -> None:
    """Types as the shared modules expect them from sqlite3: sums as ints."""
    conn.adapters.register_loader("numeric", _IntLoader)


class PgCursor:
    """A psycopg cursor seen as a sqlite3 cursor, without the PostgreSQL-only columns."""

    __slots__ = ("_cur", "_keep")

    def __init__(self, cur: psycopg.Cursor[Any]) -> None:
        self._cur = cur
        self._keep: list[int] | None = None
        if cur.description is not None and any(d.name in HIDDEN for d in cur.description):
            self._keep = [i for i, d in enumerate(cur.description) if d.name not in HIDDEN]

    @property
    def description(self) -> list[tuple[str, ...]] | None:
        found = self._cur.description
        if found is None:
            return None
        return [(d.name,) for i, d in enumerate(found) if self._keep is None or i in self._keep]

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    def _row(self, row: Sequence[Any] | None) -> Any:
        if row is None or self._keep is None:
            return row
        return tuple(row[i] for i in self._keep)

    def fetchone(self) -> Any:
        return self._row(self._cur.fetchone()) if self._cur.description is not None else None

    def fetchall(self) -> list[Any]:
        if self._cur.description is None:
            return []
        return [self._row(row) for row in self._cur.fetchall()]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PgConnection:
    """A psycopg connection with the sqlite3 calls the shared query modules make, in their dialect."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn
        configure(conn)

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    def execute(self, sql: str, params: Any = ()) -> PgCursor:
        control = _CONTROL.get(sql)
        if control is not None:  # transaction control: never prepared
            return PgCursor(self.raw.execute(control))
        return PgCursor(self.raw.execute(translate(sql), params or (), prepare=True))

    def executemany(self, sql: str, params: Any) -> PgCursor:
        cur = self.raw.cursor()
        cur.executemany(translate(sql), params)
        return PgCursor(cur)

    def close(self) -> None:
        self.raw.close()
