"""Requests as they complete, pushed to whoever follows them (`gatewayctl usage tail`).

Settlement publishes each closing once its transaction has committed, so a follower sees only what the
request log holds, in commit order. Nobody following costs one truth test per request. Each follower
has a bounded queue: one that reads too slowly loses the oldest entries (and is told how many), never
slows a request or grows the server's memory. `close` ends every follower (a stop or a restart), so the
CLI reconnects to the next server.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from server.money import format_credits
from server.store.protocol import Closing
from server.types import ended_request

FOLLOWER_QUEUE = 1000


@dataclass(slots=True)
class Filters:
    """What a follower wants to see; empty fields match everything. `status` "failed" is any non-ok end."""

    project_id: str | None = None
    key_id: str | None = None
    model: str | None = None
    status: str | None = None

    def match(self, row: dict[str, Any]) -> bool:
        if self.status == "failed":
            if row["status"] == "ok":
                return False
        elif self.status and row["status"] != self.status:
            return False
        return (
            (not self.project_id or row["project_id"] == self.project_id)
            and (not self.key_id or row["key_id"] == self.key_id)
            and (not self.model or row["model"] == self.model)
        )


@dataclass(eq=False)
class Follower:
    filters: Filters
    rows: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=FOLLOWER_QUEUE))
    dropped: int = 0
    ended: bool = False
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def push(self, row: dict[str, Any]) -> None:
        if len(self.rows) == self.rows.maxlen:
            self.dropped += 1
        self.rows.append(row)
        self._wake.set()

    def end(self) -> None:
        self.ended = True
        self._wake.set()

    async def next_batch(self, timeout: float) -> tuple[list[dict[str, Any]], int]:
        """The rows waiting (and how many were dropped since the last batch); empty after `timeout`."""
        if not self.rows and not self.ended:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
        batch = list(self.rows)
        self.rows.clear()
        dropped, self.dropped = self.dropped, 0
        return batch, dropped


def row_of(closing: Closing) -> dict[str, Any]:
    """A closed request as the tail shows it: the facts every event carries, names beside the ids, its cost
    in credits and the request it replays."""
    caller, call, outcome = closing.caller, closing.call, closing.outcome
    row = ended_request(caller, call, outcome)
    return {
        **row,
        "id": call.request_id,
        "project_name": caller.project.name if caller.project else None,
        "key_prefix": caller.key.prefix if caller.key else None,
        "key_name": caller.key.name if caller.key else None,
        "cost": format_credits(row["cost_micro"]),
        "replay_of": call.replay_of,
    }


class RequestFeed:
    def __init__(self) -> None:
        self._followers: set[Follower] = set()

    def __len__(self) -> int:
        return len(self._followers)

    def follow(self, filters: Filters) -> Follower:
        follower = Follower(filters)
        self._followers.add(follower)
        return follower

    def leave(self, follower: Follower) -> None:
        self._followers.discard(follower)

    def publish(self, closing: Closing) -> None:
        """A committed closing, to every follower whose filters match it."""
        if not self._followers:
            return
        row = row_of(closing)
        for follower in self._followers:
            if follower.filters.match(row):
                follower.push(row)

    def close(self) -> None:
        """End every follower: the server is stopping."""
        for follower in self._followers:
            follower.end()
        self._followers.clear()
