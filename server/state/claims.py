"""Idempotency keys in flight, shared by a fleet: `SET NX PX` claims a key, a token proves who holds it.

A claim expires after `hold_ttl_s` unless the process holding it renews it (server/state/__init__.py's
keep-alive does, with the holds), so a process that dies mid-request frees its keys within that time.
Dropping a claim deletes it only if this process still holds it (compare-and-delete in Lua), so a claim
that expired and was taken by another request is never dropped by the first.

Failure behaviour: a claim that cannot reach Redis is refused with 503 (the request is not run, so nothing
can run twice); a drop that cannot reach it is left to expire.
"""

from __future__ import annotations

from server.state.connection import PREFIX, Connection, Script, Unavailable, refused

DROP = Script("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0")
RENEW = Script(
    """
local renewed = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i + 1] then renewed = renewed + redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
end
return renewed
"""
)


def _key(slot: tuple[str, str]) -> str:
    return f"{PREFIX}idem:{slot[0]}:{slot[1]}"


class SharedInFlight:
    """The `InFlight` of a fleet (server/idempotency.py)."""

    def __init__(self, connection: Connection, ttl_s: float) -> None:
        self._connection = connection
        self._ttl_ms = int(ttl_s * 1000)
        self._held: dict[tuple[str, str], str] = {}  # slot -> the token proving this process holds it

    def take(self, slot: tuple[str, str]) -> bool:
        token = self._connection.unique()
        client = self._connection.client
        try:
            taken = self._connection.call(client.set, _key(slot), token, None, self._ttl_ms, True)
        except Unavailable:
            raise refused() from None
        if taken:
            self._held[slot] = token
        return bool(taken)

    def drop(self, slot: tuple[str, str]) -> None:
        token = self._held.pop(slot, None)
        if token is not None:
            try:
                self._connection.run(DROP, (_key(slot),), (token,))
            except Unavailable:
                pass  # it expires by itself

    def renew(self) -> int:
        if not self._held:
            return 0
        held = list(self._held.items())
        keys = [_key(slot) for slot, _ in held]
        return int(self._connection.run(RENEW, keys, [self._ttl_ms, *(token for _, token in held)]))
