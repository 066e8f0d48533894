"""The fleet on PostgreSQL: process leases (instances), recovery of a dead process's requests, and leases
on background work, as writer operations (each runs in a group transaction of the writer).

- Each process inserts its `instances` row at start and renews it every `ttl / 4` (a thread and a
  connection of its own: a busy writer or a stalled event loop never makes it look dead); a row not renewed for
  `ttl` is a dead process (on this host, a row whose PID no longer runs is dead at once).
- `reap` closes a dead process's pending requests the way a restart closes them (records.recover: billed
  for what a checkpoint proves, hold settled or released) and deletes its row, all in one transaction.
  The dead rows are taken `FOR UPDATE SKIP LOCKED` and the pending requests `FOR UPDATE OF r SKIP LOCKED`,
  so two live processes never close the same request (and the ledger's unique source ids would refuse a
  second debit anyway).
- `take_lease(name)`: background work (webhook deliveries, maintenance) is done by the one process holding
  its lease; a lease not renewed within `ttl` passes to the next process that asks.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

from server.store.protocol import Interrupted, Recovery
from server.store.sqlite import ledger, records

HOST = socket.gethostname()

# The pending requests records.interrupted() may close here: those of no live process, locked as taken.
ORPHANS = " AND (r.owner IS NULL OR r.owner NOT IN (SELECT id FROM instances)) FOR UPDATE OF r SKIP LOCKED"


def register(instance: str, when_ms: int) -> Callable[[Any], None]:
    def op(conn: Any) -> None:
        conn.raw.execute(
            "INSERT INTO instances (id, host, pid, started_ms, renewed_ms) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET renewed_ms = EXCLUDED.renewed_ms",
            (instance, HOST, os.getpid(), when_ms, when_ms),
        )

    return op


def renew(instance: str, when_ms: int) -> Callable[[Any], bool]:
    """Renew this process's lease; False when another process found it dead and closed its requests."""

    def op(conn: Any) -> bool:
        renewed = conn.raw.execute(
            "UPDATE instances SET renewed_ms = %s WHERE id = %s RETURNING id", (when_ms, instance)
        ).fetchone()
        if renewed is not None:
            return True
        register(instance, when_ms)(conn)
        return False

    return op


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it runs, under another user
    return True


def reap(
    instance: str, now_ms: int, ttl_ms: int, chain: ledger.Chain, recover: Callable[[Interrupted], Recovery]
) -> Callable[[Any], list[Interrupted]]:
    """Close the pending requests of dead processes (and of none: rows copied in by migrate-store), delete
    their instance rows and the leases they held; returns what was closed."""

    def op(conn: Any) -> list[Interrupted]:
        found = conn.raw.execute(
            "SELECT id, host, pid, renewed_ms FROM instances WHERE id != %s FOR UPDATE SKIP LOCKED", (instance,)
        ).fetchall()
        dead = [
            row[0]
            for row in found
            if row[3] < now_ms - ttl_ms or (row[1] == HOST and row[2] != os.getpid() and not _pid_alive(row[2]))
        ]
        if dead:
            conn.raw.execute("DELETE FROM instances WHERE id = ANY(%s)", (dead,))
            conn.raw.execute("DELETE FROM leases WHERE holder = ANY(%s)", (dead,))
        pending = records.interrupted(conn, ORPHANS)
        if pending:
            records.recover(conn, chain, [recover(item) for item in pending])
        return pending

    return op


def adopt_holds(instance: str) -> Callable[[Any], set[str]]:
    """Claim the open job and session holds of processes that are gone (their instance rows were deleted
    by `reap`; or none, copied in by migrate-store): this process restores and settles them now. Holds of
    live processes stay theirs. Returns the ids claimed."""

    def op(conn: Any) -> set[str]:
        found = conn.raw.execute(
            "SELECT id FROM holds WHERE status = 'open' AND kind != 'request'"
            " AND (owner IS NULL OR owner NOT IN (SELECT id FROM instances)) FOR UPDATE SKIP LOCKED"
        ).fetchall()
        ids = [row[0] for row in found]
        if ids:
            conn.raw.execute("UPDATE holds SET owner = %s WHERE id = ANY(%s)", (instance, ids))
        return set(ids)

    return op


def take_lease(name: str, holder: str, now_ms: int, ttl_ms: int) -> Callable[[Any], bool]:
    """Take or renew the lease `name`; True when `holder` has it now."""

    def op(conn: Any) -> bool:
        row = conn.raw.execute(
            "INSERT INTO leases (name, holder, expires_ms) VALUES (%s, %s, %s) ON CONFLICT (name) DO UPDATE"
            " SET holder = EXCLUDED.holder, expires_ms = EXCLUDED.expires_ms"
            " WHERE leases.holder = EXCLUDED.holder OR leases.expires_ms < %s RETURNING holder",
            (name, holder, now_ms + ttl_ms, now_ms),
        ).fetchone()
        return row is not None

    return op


def leave(instance: str) -> Callable[[Any], None]:
    """A clean stop: give up the leases and the instance row (nothing of ours is pending any more)."""

    def op(conn: Any) -> None:
        conn.raw.execute("DELETE FROM leases WHERE holder = %s", (instance,))
        conn.raw.execute("DELETE FROM instances WHERE id = %s", (instance,))

    return op
