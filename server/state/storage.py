"""The storage quota on Redis: server/files/quota.py's reservations and bytes in use, shared by every
process of a fleet, so an upload through one machine counts against what another may accept.

Per project: bytes in use (`fq:used:<project>`), and the uploads in flight as members `<id>|<bytes>` of a
sorted set scored by expiry with their running total, as budget holds are (server/state/budgets.py, whose
purge, renew and load scripts this reuses). Check-and-reserve is one Lua script, so concurrent uploads
through any number of processes cannot pass the limit together. This process renews its reservations
every `hold_ttl_s / 3` (HotState's keep-alive); a dead process's expire.

Bytes in use are loaded from the store (the truth: live files' sizes) by the first process to start on an
empty Redis (a marker says they are loaded); a Redis that lost them is noticed by the missing marker:
uploads get 503 until they are loaded again, moments later.

Failure behaviour: a reservation or check that cannot reach Redis is refused with 503 (never admitted
unchecked); adding or freeing bytes that cannot reach it is kept in this process and applied when Redis
answers again; the headers' `x-storage-used-bytes` then show the last value this process read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from server.errors import STORAGE_QUOTA_EXCEEDED
from server.files.quota import Reservation
from server.state.budgets import LOAD, PURGE, RENEW
from server.state.connection import CLOCK_LUA, PREFIX, Connection, Script, Unavailable, refused

log = logging.getLogger("gateway")
MARKER = f"{PREFIX}fq:loaded"

# KEYS: marker, used, reservations set, reserved total
# ARGV: member to add ('' only checks), adding, limit, ttl ms, own member ('' none) and its bytes
RESERVE = Script(
    CLOCK_LUA
    + PURGE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {9, 0} end
local taken = tonumber(redis.call('GET', KEYS[2]) or '0') + purge(KEYS[3], KEYS[4], now)
if ARGV[5] ~= '' and redis.call('ZSCORE', KEYS[3], ARGV[5]) then taken = taken - tonumber(ARGV[6]) end
local adding = tonumber(ARGV[2])
if taken + adding > tonumber(ARGV[3]) then return {1, taken} end
if ARGV[1] ~= '' and redis.call('ZADD', KEYS[3], 'NX', now + tonumber(ARGV[4]), ARGV[1]) == 1 then
  redis.call('INCRBY', KEYS[4], adding)
end
return {0, taken}
"""
)

# KEYS: reservations set, reserved total, used; ARGV: member ('' none), its bytes, bytes to add to used (or take)
SETTLE = Script(
    """
if ARGV[1] ~= '' and redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then redis.call('DECRBY', KEYS[2], ARGV[2]) end
local delta = tonumber(ARGV[3])
if delta ~= 0 and redis.call('INCRBY', KEYS[3], delta) < 0 then redis.call('SET', KEYS[3], 0) end
return 0
"""
)


def _keys(project_id: str) -> list[str]:
    return [f"{PREFIX}fq:used:{project_id}", f"{PREFIX}fq:held:{project_id}", f"{PREFIX}fq:reserved:{project_id}"]


class SharedStorageQuota:
    def __init__(
        self, connection: Connection, hold_ttl_s: float, load: Callable[[], Awaitable[dict[str, int]]]
    ) -> None:
        self._connection = connection
        self._ttl_ms = int(hold_ttl_s * 1000)
        self._load = load
        self._open: dict[str, Reservation] = {}  # reservations this process made and renews
        self._pending: list[tuple[str, int]] = []  # used-bytes changes an outage held back
        self._seen: dict[str, int] = {}  # the last bytes in use read per project
        self._reloading: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load bytes in use from the store unless Redis has them (another process loaded them)."""
        used = await self._load()
        try:
            self._write_used(used)  # on the loop, as every call on the process's one Redis connection
        except Unavailable as exc:
            raise RuntimeError(f"[state] url: redis at {self._connection.url} is unreachable at start: {exc}") from None

    def _write_used(self, used: dict[str, int]) -> bool:
        keys, args = [MARKER], [0]
        for project_id, size in used.items():
            keys.append(_keys(project_id)[0])
            args += [size, 0]
        return bool(self._connection.run(LOAD, keys, args))

    def _reload(self) -> None:
        if self._reloading is None or self._reloading.done():
            self._reloading = asyncio.get_running_loop().create_task(self.start())

    def _run(self, reservation: Reservation | None, project_id: str, adding: int, limit: int, own: str = "") -> None:
        member = f"{reservation.id}|{reservation.bytes}" if reservation is not None else ""
        own_bytes = int(own.rsplit("|", 1)[1]) if own else 0
        args = (member, adding, limit, self._ttl_ms, own, own_bytes)
        try:
            code, taken = self._connection.run(RESERVE, [MARKER, *_keys(project_id)], args)
        except Unavailable:
            raise refused() from None
        if code == 9:
            self._reload()
            raise refused()
        if code == 1:
            raise STORAGE_QUOTA_EXCEEDED(used=int(taken), adding=adding, limit=limit)

    def in_use(self, project_id: str) -> int:
        try:
            value = self._connection.call(self._connection.client.get, _keys(project_id)[0])
        except Unavailable:
            return self._seen.get(project_id, 0)
        self._seen[project_id] = int(value or 0)
        return self._seen[project_id]

    def check(self, project_id: str, limit: int, adding: int) -> None:
        """Refuse (413) when `adding` more bytes would pass the limit beside what is used and reserved."""
        self._run(None, project_id, adding, limit)

    def reserve(self, project_id: str, limit: int, adding: int) -> Reservation:
        reservation = Reservation(project_id, adding, limit, id=self._connection.unique())
        self._run(reservation, project_id, adding, limit)
        self._open[reservation.id] = reservation
        return reservation

    def confirm(self, reservation: Reservation, actual: int) -> None:
        """The upload's real size must fit beside what is used and what the others reserve (413 if not)."""
        own = f"{reservation.id}|{reservation.bytes}"
        self._run(None, reservation.project_id, actual, reservation.limit, own)

    def settle(self, reservation: Reservation, actual: int | None) -> None:
        if reservation.done:
            return
        reservation.done = True
        self._open.pop(reservation.id, None)
        self._change(reservation.project_id, actual or 0, f"{reservation.id}|{reservation.bytes}", reservation.bytes)

    def add(self, project_id: str, size: int) -> None:
        self._change(project_id, size)

    def free(self, project_id: str, size: int) -> None:
        self._change(project_id, -size)

    def _change(self, project_id: str, delta: int, member: str = "", held: int = 0) -> None:
        used, held_set, reserved = _keys(project_id)
        try:
            self._connection.run(SETTLE, [held_set, reserved, used], (member, held, delta))
        except Unavailable:
            if delta:
                self._pending.append((project_id, delta))  # the reservation itself expires on its own

    def renew(self) -> int:
        """Push this process's reservations' expiry forward and apply what an outage held back."""
        pending, self._pending = self._pending, []
        for project_id, delta in pending:
            self._change(project_id, delta)
        if not self._open:
            return 0
        keys: list[str] = []
        args: list[object] = [self._ttl_ms]
        for reservation in list(self._open.values()):
            keys += _keys(reservation.project_id)[1:]
            args += [f"{reservation.id}|{reservation.bytes}", reservation.bytes]
        return int(self._connection.run(RENEW, keys, args))
