"""Provider cooldowns shared by a fleet: consecutive failures are counted in Redis, and a cooldown that
starts is announced to every process (server/state/invalidation.py), which keeps it in memory.

So `cooling` (asked for every target of every call) stays a dictionary lookup with no round trip; a
failure costs one `INCR`; a success costs a round trip only when this process has seen failures of that
provider lately (the shared count is reset then). Counting is fleet-wide, as the setting reads
("a provider that failed `cooldown_failures` times in a row"), up to one subtlety: a success in a process
that saw no failure does not reset the shared count.

Failure behaviour: Redis out of reach makes this process count alone (as one process would); cooldowns
are an optimisation, never money.
"""

from __future__ import annotations

from collections.abc import Callable

from server.routing import ProviderHealth
from server.settings import RoutingSettings
from server.state.connection import PREFIX, Connection, Script, Unavailable

FAIL = Script(
    """
local count = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if count >= tonumber(ARGV[1]) then redis.call('DEL', KEYS[1]) return 1 end
return 0
"""
)


class SharedHealth(ProviderHealth):
    """`ProviderHealth` whose failure counts are shared; `announce(provider, seconds)` tells the fleet."""

    def __init__(
        self, settings: RoutingSettings, connection: Connection, announce: Callable[[str, float], None]
    ) -> None:
        super().__init__(settings)
        self._connection = connection
        self._announce = announce

    def failed(self, provider: str, now: float) -> None:
        settings = self._settings
        self._failures[provider] = self._failures.get(provider, 0) + 1
        key = f"{PREFIX}cool:{provider}"
        window_ms = int(max(settings.cooldown_seconds, 60) * 1000)
        try:
            started = self._connection.run(FAIL, (key,), (settings.cooldown_failures, window_ms))
        except Unavailable:
            super().failed(provider, now)  # counted here alone
            return
        if started:
            self.cool(provider, now + settings.cooldown_seconds)
            self._failures[provider] = 0
            self._announce(provider, settings.cooldown_seconds)

    def cool(self, provider: str, until: float) -> None:
        """A cooldown started (here, or announced by another process)."""
        self._cool_until[provider] = max(self._cool_until.get(provider, 0.0), until)
        self.cooldowns[provider] = self.cooldowns.get(provider, 0) + 1

    def succeeded(self, provider: str) -> None:
        if self._failures.pop(provider, None):
            try:
                self._connection.call(self._connection.client.delete, f"{PREFIX}cool:{provider}")
            except Unavailable:
                pass
        self._cool_until.pop(provider, None)
