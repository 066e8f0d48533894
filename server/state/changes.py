"""What an invalidation message says, and how a receiving process applies it to its snapshot.

Messages: `{"op": "key", "key": {...}}` (created, rotated, revoked, scopes or budget changed),
`{"op": "project", "project": {...}}` (created, plan, billing or budget changed), `{"op": "cool",
"provider": name, "until": unix seconds}` (a provider cooldown started). Entries travel whole: key hashes are
SHA-256 digests of random secrets (never the secrets), and Redis is a trusted part of the deployment.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from server.snapshot import KeyEntry, ProjectEntry

if TYPE_CHECKING:
    from server.gateway import Gateway

LOCAL_ONLY = ("last_used_ms",)  # kept by each process for itself


def key_message(key: KeyEntry) -> dict[str, Any]:
    row = {name: getattr(key, name) for name in KeyEntry.__slots__ if name not in LOCAL_ONLY}  # type: ignore[attr-defined]
    row["scopes"] = key.scopes.as_dict()
    return {"op": "key", "key": row}


def project_message(project: ProjectEntry) -> dict[str, Any]:
    return {"op": "project", "project": {name: getattr(project, name) for name in ProjectEntry.__slots__}}  # type: ignore[attr-defined]


def apply_change(gw: Gateway, message: dict[str, Any]) -> None:
    """Put another process's change in force here (synchronously: the next request sees it)."""
    op = message.get("op")
    if op == "key":
        fresh = KeyEntry.from_row(message["key"])
        entry = gw.snapshot.keys_by_id.get(fresh.id)
        if entry is None:
            gw.snapshot.put_key(fresh)
            return
        for stale in (entry.key_hash, entry.prev_key_hash):
            if stale and gw.snapshot.keys_by_hash.get(stale) is entry:
                gw.snapshot.forget_hash(stale)
        for name in KeyEntry.__slots__:  # type: ignore[attr-defined]
            if name not in LOCAL_ONLY:
                setattr(entry, name, getattr(fresh, name))  # the entry is shared with callers in flight
        gw.snapshot.put_key(entry)
        if entry.revoked_ms is not None:
            gw.sessions.end_key(entry.id)
    elif op == "project":
        fresh_project = ProjectEntry.from_row(message["project"])
        project = gw.snapshot.projects_by_id.get(fresh_project.id)
        if project is None:
            gw.snapshot.put_project(fresh_project)
            return
        for name in ProjectEntry.__slots__:  # type: ignore[attr-defined]
            setattr(project, name, getattr(fresh_project, name))
        gw.snapshot.put_project(project)
    elif op == "cool":
        health = gw.generations.current.router.health
        cool = getattr(health, "cool", None)
        remaining = float(message["until"]) - time.time()  # wall clock: a replayed old one has run out
        if cool is not None and remaining > 0:
            cool(message["provider"], time.monotonic() + remaining)
