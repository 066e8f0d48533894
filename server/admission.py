"""The checks before forwarding: authenticate, authorize (scopes), rate-limit, reserve money.

Each method raises the documented GatewayError; none knows HTTP. The worst case a reservation holds
comes from `metering.worst_case` (input bounded by the body's size, output by the request's own cap
times its choices, else the configured default cap, which is then sent upstream as the real bound).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from server.clock import now_ms
from server.errors import MODEL_NOT_FOUND, MODEL_NOT_SUPPORTED, GatewayError
from server.events.outbox import RateLimitedSampler, rate_limited_event
from server.keys import authenticate
from server.limits import Admission, Check, RateLimiter
from server.settings import LimitSettings, PlanSettings
from server.snapshot import NO_MODEL, ModelEntry, Snapshot
from server.store.protocol import Event
from server.types import Call, Caller

MINUTE = 60.0


@dataclass
class Gatekeeper:
    """Who may call, what, and how often: the snapshot of keys and models, the limiter, the plans."""

    snapshot: Snapshot
    limiter: RateLimiter
    limits: LimitSettings
    plans: dict[str, PlanSettings]
    sampler: RateLimitedSampler
    emit: Callable[[tuple[Event, ...]], Any]

    def admit(self, secret: str | None, client_ip: str) -> Caller:
        """The per-IP safety net, then the key (hash lookup, constant-time compare), expiry, IP scope."""
        self.admit_anonymous(client_ip)
        entry = authenticate(self.snapshot, secret, now_ms())
        entry.scopes.check_ip(client_ip)
        project = self.snapshot.projects_by_id[entry.project_id]
        return Caller(project_id=project.id, key_id=entry.id, client_ip=client_ip, key=entry, project=project)

    def admit_anonymous(self, client_ip: str) -> None:
        """The per-IP safety net alone, for the one route served without a key (a signed download URL)."""
        limits = self.limits
        ip_window = self.limiter.pace(("ip", client_ip), limits.ip_requests, limits.ip_window_seconds)
        try:
            self.limiter.admit([Check(ip_window, 1, "per-IP safety net", "requests")], time.monotonic())
        except GatewayError as exc:
            self._rate_limited(f"ip_{client_ip}", None, exc)
            raise

    def authorize(self, caller: Caller, call: Call, capability: str, endpoint_class: str) -> ModelEntry:
        """The model a call may use (scopes checked); a call without a model (files) is scoped by class only."""
        assert caller.key is not None
        if not call.model:
            caller.key.scopes.check_call(endpoint_class, None)
            return NO_MODEL
        model = self.snapshot.models.get(call.model)
        caller.key.scopes.check_call(endpoint_class, call.model)
        if model is None:
            raise MODEL_NOT_FOUND(model=call.model, param="model")
        if capability not in model.capabilities:
            raise MODEL_NOT_SUPPORTED(model=call.model, capability=capability, param="model")
        return model

    def limit(self, caller: Caller, endpoint_class: str, tokens: int, call: Call | None = None) -> Admission:
        """Key RPM/TPM and the project's plan limits for this endpoint class, all or nothing; a refusal's
        (sampled) request.rate_limited event names the call's request id and model."""
        try:
            return self.limiter.admit(self.checks(caller, endpoint_class, tokens), time.monotonic())
        except GatewayError as exc:
            self.refused(caller, exc, call)
            raise

    def checks(self, caller: Caller, endpoint_class: str, tokens: int) -> list[Check]:
        """The rate limits a call of `caller` in this endpoint class must pass (key, then plan)."""
        assert caller.key is not None and caller.project is not None
        scopes = caller.key.scopes
        window = self.limiter.window
        checks: list[Check] = []
        if scopes.rpm:
            checks.append(Check(window(("key-rpm", caller.key_id), scopes.rpm, MINUTE), 1, "key", "requests"))
        if scopes.tpm:
            checks.append(Check(window(("key-tpm", caller.key_id), scopes.tpm, MINUTE), tokens, "key", "tokens"))
        plan_name = caller.project.plan or "default"
        plan = self.plans.get(plan_name)
        if plan is not None:
            rpm = plan.rpm.get(endpoint_class)  # type: ignore[call-overload]
            if rpm:
                key = ("plan-rpm", caller.project_id, endpoint_class)
                label = f"plan '{plan_name}' {endpoint_class}"
                checks.append(Check(window(key, rpm, MINUTE), 1, label, "requests"))
            if plan.tpm:
                key = ("plan-tpm", caller.project_id)
                checks.append(Check(window(key, plan.tpm, MINUTE), tokens, f"plan '{plan_name}'", "tokens"))
        return checks

    def refused(self, caller: Caller, exc: GatewayError, call: Call | None = None) -> None:
        """A limit refused the call: its (sampled) request.rate_limited event (any other refusal: nothing)."""
        if exc.status == 429:
            self._rate_limited(f"key_{caller.key_id}", caller.project_id, exc, call)

    def _rate_limited(self, subject: str, project_id: str | None, exc: GatewayError, call: Call | None = None) -> None:
        when = now_ms()
        if self.sampler.due(subject, when):
            event_id, payload = rate_limited_event(subject, project_id, exc.message)
            if call is not None:
                payload |= {"request_id": call.request_id, "model": call.model, "endpoint": call.endpoint}
            self.emit((Event(event_id, "request.rate_limited", project_id, payload, when),))
