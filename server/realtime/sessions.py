"""The realtime sessions open on this server: counted against the limits, ended by revocation and by a stop.

- Limits, checked before the upgrade completes (429 `too_many_sessions`): `[realtime] max_sessions` for the
  whole server, and the plan's `realtime_sessions` (per project) and `realtime_sessions_per_key`. A session
  counts from its admission to its end, so concurrent upgrades cannot slip past a limit.
- `end_key(key_id)`: revoking a key ends its open sessions at once (an `error` event `key_revoked`, close
  1008): they are told within the close deadline, their running responses billed.
- `stop(grace)`: a graceful stop; new responses are refused, each session closes (1012) once its running
  responses finish, and whatever still runs when the grace is over is ended then (and billed).
"""

from __future__ import annotations

import asyncio
from collections import Counter

from server.errors import KEY_REVOKED, SESSION_STOPPING, TOO_MANY_SESSIONS
from server.pipeline import RequestPath
from server.realtime.opening import Knock, admit, open_upstream
from server.realtime.session import INTERRUPTED, ClientSocket, Ending, RealtimeSession
from server.settings import PlanSettings, RealtimeSettings
from server.settlement import ERROR
from server.types import Caller


class OpenSessions:
    def __init__(self, settings: RealtimeSettings, path: RequestPath) -> None:
        self.settings = settings
        self._path = path
        self._sessions: set[RealtimeSession] = set()
        self._by_key: Counter[str] = Counter()
        self._by_project: Counter[str] = Counter()
        self._grace: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return sum(self._by_project.values())

    def _count(self, caller: Caller) -> None:
        plan = self._plan(caller)
        if len(self) >= self.settings.max_sessions:
            raise TOO_MANY_SESSIONS(detail=f"The gateway has {len(self)} realtime sessions open, its limit.")
        for limit, counter, subject, scope in (
            (plan.realtime_sessions if plan else None, self._by_project, caller.project_id, "this project"),
            (plan.realtime_sessions_per_key if plan else None, self._by_key, caller.key_id, "this key"),
        ):
            if limit is not None and counter[subject] >= limit:
                raise TOO_MANY_SESSIONS(
                    detail=f"{scope.capitalize()} already has {counter[subject]} realtime sessions open, its limit.",
                    headers={"retry-after": "1"},
                )
        self._by_project[caller.project_id] += 1
        self._by_key[caller.key_id] += 1

    def _uncount(self, caller: Caller) -> None:
        for counter, subject in ((self._by_project, caller.project_id), (self._by_key, caller.key_id)):
            counter[subject] -= 1
            if counter[subject] <= 0:
                del counter[subject]

    def _plan(self, caller: Caller) -> PlanSettings | None:
        plan = caller.project.plan if caller.project is not None else None
        return self._path.gatekeeper.plans.get(plan or "default")

    async def serve(self, knock: Knock, client: ClientSocket) -> None:
        """Open a session for `knock` and run it until it ends; a refusal before the upgrade raises its
        GatewayError (the caller answers it over HTTP)."""
        path = self._path
        caller, call, model = admit(path, knock)
        self._count(caller)
        try:
            opened = await open_upstream(path, caller, call, model, knock, self.settings.max_event_mb << 20)
            session = RealtimeSession(opened, self.settings, client)
            self._sessions.add(session)
            if self._grace is not None:  # a stop began while it was opening
                session.stop()
            if caller.key is not None and caller.key.revoked_ms is not None:  # revoked while it was opening
                session.end(Ending.telling(KEY_REVOKED(), ERROR, 1008))
            try:
                await session.run()
            finally:
                self._sessions.discard(session)
        finally:
            self._uncount(caller)

    def end_key(self, key_id: str) -> int:
        """End the key's open sessions now (revocation)."""
        ended = [s for s in self._sessions if s.key_id == key_id]
        for session in ended:
            session.end(Ending.telling(KEY_REVOKED(), ERROR, 1008))
        return len(ended)

    def stop(self, grace_s: float) -> int:
        """Begin a graceful stop: each session ends once its running responses have finished, or at the grace."""
        sessions = list(self._sessions)
        for session in sessions:
            session.stop()
        self._grace = asyncio.get_running_loop().call_later(grace_s, self._grace_over)
        return len(sessions)

    def _grace_over(self) -> None:
        for session in list(self._sessions):
            session.end(Ending.telling(SESSION_STOPPING(), INTERRUPTED, 1012))
