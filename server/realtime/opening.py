"""Opening a realtime session, everything before the WebSocket handshake completes, so every refusal is an
HTTP answer (401 before the upgrade, 403, 404, 429, 503, 502-504) rather than a closed socket:

    admit (per-IP net, key, expiry, IP scope) -> authorize (model scope, endpoint class `realtime`, the model
    serves realtime) -> store healthy -> the session's row (intent, holding nothing) -> route: the model's
    targets in order until one upstream session opens (fallback only here, before the session exists).

A route that fails closes the session's row as upstream_failed (with its attempts). The opened session
holds its generation (the providers it talks to) and its connection lease until it ends.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

from server.clock import now_ms
from server.errors import METERING_UNAVAILABLE, MISSING_MODEL, GatewayError, UpstreamError
from server.generation import Generation
from server.pipeline import RequestPath
from server.providers.realtime import RealtimeOptions, RealtimeUpstream
from server.realtime.dialect import RealtimeDialect
from server.request_facts import note_model
from server.routing import Lease
from server.settlement import DISCONNECTED, ERROR, UPSTREAM_FAILED, conclude
from server.snapshot import ModelEntry
from server.store.protocol import Intent
from server.types import Attempt, Call, Caller, Target


@dataclass(frozen=True, slots=True)
class Knock:
    """What an upgrade request brings: its key, where it comes from, the model asked for, its ids."""

    secret: str | None
    client_ip: str
    model: str | None
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_request_id: str | None = None
    beta: str | None = None  # the OpenAI-Beta protocol the client speaks (header or subprotocol)


@dataclass(eq=False)
class Opened:
    """An upstream session open for an admitted client, and what closing it needs."""

    path: RequestPath
    caller: Caller
    intent: Intent
    intent_written: asyncio.Future[Any]
    model: ModelEntry
    dialect: RealtimeDialect
    target: Target
    depth: int
    attempts: list[Attempt]
    upstream: RealtimeUpstream
    lease: Lease
    generation: Generation
    _released: bool = False

    def release(self) -> None:
        """The session is over: its connection lease and its generation go (once)."""
        if not self._released:
            self._released = True
            self.lease.release()
            self.generation.leave()


def admit(path: RequestPath, knock: Knock) -> tuple[Caller, Call, ModelEntry]:
    """The caller, the session's call and its model; raises the refusal (401, 403, 404, 400)."""
    caller = path.admit(knock.secret, knock.client_ip)
    if not knock.model:
        raise MISSING_MODEL(param="model")
    note_model(knock.model)  # for the access log line
    call = Call(
        request_id=knock.request_id,
        endpoint="realtime",
        model=knock.model,
        body={"model": knock.model},
        client_request_id=knock.client_request_id,
        started_ms=now_ms(),
        session_id=knock.request_id,
    )
    model = path.gatekeeper.authorize(caller, call, "realtime", "realtime")
    return caller, call, model


async def open_upstream(
    path: RequestPath, caller: Caller, call: Call, model: ModelEntry, knock: Knock, max_event_bytes: int
) -> Opened:
    """Write the session's row and open the upstream session; raises the refusal (503, 502-504)."""
    if not path.store.healthy:
        raise METERING_UNAVAILABLE(headers={"retry-after": "1"})
    intent = Intent(caller, call, None)
    written = path.store.record_intent(intent)
    written.add_done_callback(lambda done: done.cancelled() or done.exception())
    generation = path.generations.current
    generation.enter()
    options = RealtimeOptions(beta=knock.beta, max_event_bytes=max_event_bytes)
    attempts: list[Attempt] = []
    try:
        depth, target, upstream, lease = await generation.router.first_success(
            model.targets, lambda provider, name: provider.realtime(name, options), attempts, caller.project_id
        )
    except BaseException as exc:
        generation.leave()
        if isinstance(exc, GatewayError):
            status = UPSTREAM_FAILED if isinstance(exc, UpstreamError) else ERROR
            outcome = conclude(model.rates, attempts, status=status, http_status=exc.status, error_code=exc.code)
        else:
            outcome = conclude(
                model.rates, attempts, status=DISCONNECTED, http_status=499, error_code="client_disconnected"
            )
        path.settlement.close_session(intent, written, outcome)
        raise
    dialect = RealtimeDialect()
    return Opened(path, caller, intent, written, model, dialect, target, depth, attempts, upstream, lease, generation)
