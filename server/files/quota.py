"""The per-project storage quota (the plan's `storage_mb`), in memory on the event loop like budgets (a fleet
shares one on Redis: server/state/storage.py, the same `Quota` surface).

Bytes in use are loaded from the store at start-up; an upload reserves what it may add before it is
stored (its declared length, or the file cap when none is declared), is checked again against what it
really weighed, and turns the reservation into use or drops it. Concurrent uploads cannot pass the limit
together. Deleting a file frees its bytes at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from server.errors import STORAGE_QUOTA_EXCEEDED


@dataclass(slots=True)
class Reservation:
    project_id: str
    bytes: int
    limit: int
    done: bool = False
    id: str = ""  # the shared quota's member name (server/state/storage.py); unused in memory


class Quota(Protocol):
    def in_use(self, project_id: str) -> int: ...

    def check(self, project_id: str, limit: int, adding: int) -> None: ...

    def reserve(self, project_id: str, limit: int, adding: int) -> Reservation: ...

    def confirm(self, reservation: Reservation, actual: int) -> None: ...

    def settle(self, reservation: Reservation, actual: int | None) -> None: ...

    def add(self, project_id: str, size: int) -> None: ...

    def free(self, project_id: str, size: int) -> None: ...


@dataclass
class StorageQuota:
    used: dict[str, int] = field(default_factory=dict)
    reserved: dict[str, int] = field(default_factory=dict)

    def in_use(self, project_id: str) -> int:
        return self.used.get(project_id, 0)

    def check(self, project_id: str, limit: int, adding: int) -> None:
        """Refuse (413) when `adding` more bytes would pass the limit beside what is used and reserved."""
        taken = self.used.get(project_id, 0) + self.reserved.get(project_id, 0)
        if taken + adding > limit:
            raise STORAGE_QUOTA_EXCEEDED(used=taken, adding=adding, limit=limit)

    def reserve(self, project_id: str, limit: int, adding: int) -> Reservation:
        self.check(project_id, limit, adding)
        self.reserved[project_id] = self.reserved.get(project_id, 0) + adding
        return Reservation(project_id, adding, limit)

    def confirm(self, reservation: Reservation, actual: int) -> None:
        """The upload's real size must fit beside what is used and what the others reserve (413 if not)."""
        others = self.reserved.get(reservation.project_id, 0) - reservation.bytes
        taken = self.used.get(reservation.project_id, 0) + others
        if taken + actual > reservation.limit:
            raise STORAGE_QUOTA_EXCEEDED(used=taken, adding=actual, limit=reservation.limit)

    def settle(self, reservation: Reservation, actual: int | None) -> None:
        """The upload ended: `actual` bytes stored (None: nothing was)."""
        if reservation.done:
            return
        reservation.done = True
        left = self.reserved.get(reservation.project_id, 0) - reservation.bytes
        if left > 0:
            self.reserved[reservation.project_id] = left
        else:
            self.reserved.pop(reservation.project_id, None)
        if actual:
            self.add(reservation.project_id, actual)

    def add(self, project_id: str, size: int) -> None:
        self.used[project_id] = self.used.get(project_id, 0) + size

    def free(self, project_id: str, size: int) -> None:
        left = self.used.get(project_id, 0) - size
        if left > 0:
            self.used[project_id] = left
        else:
            self.used.pop(project_id, None)
