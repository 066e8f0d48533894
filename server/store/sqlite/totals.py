"""What the store has committed, for the hot state's reconciliation (server/state/reconcile.py): which of some
requests are closed, then this month's spend per project and per key and every wallet balance.

The closed requests are read first, on purpose: a request closed by then is in the totals read after it (a
request closed in between is counted twice for one round, erring on the safe side, never left out). The
balances are the projects' own `balance_micro` (moved in the transaction of each ledger entry), not a replay
of the ledger. One query text for both engines (PostgreSQL runs it through its dialect translation).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from server.store.protocol import Committed

CHUNK = 500  # request ids per IN (...) query


def committed(conn: sqlite3.Connection, since_ms: int, request_ids: Sequence[str]) -> Committed:
    out = Committed()
    for start in range(0, len(request_ids), CHUNK):
        chunk = list(request_ids[start : start + CHUNK])
        marks = ",".join("?" * len(chunk))
        found = conn.execute(f"SELECT id FROM requests WHERE status != 'pending' AND id IN ({marks})", chunk)
        out.closed.update(row[0] for row in found.fetchall())
    for project_id, balance in conn.execute("SELECT id, balance_micro FROM projects").fetchall():
        out.balances[project_id] = int(balance or 0)
        out.spent_project[project_id] = 0
    out.spent_key = {row[0]: 0 for row in conn.execute("SELECT id FROM api_keys").fetchall()}
    spend = conn.execute(
        "SELECT project_id, key_id, SUM(cost_micro) FROM usage WHERE created_ms >= ? GROUP BY project_id, key_id",
        (since_ms,),
    )
    for project_id, key_id, micro in spend.fetchall():
        out.spent_project[project_id] = out.spent_project.get(project_id, 0) + int(micro or 0)
        out.spent_key[key_id] = out.spent_key.get(key_id, 0) + int(micro or 0)
    return out
