"""The checks before forwarding: authenticate, authorize (scopes), rate-limit, reserve money.

Each function raises the documented GatewayError; none knows HTTP. Worst-case cost for the
reservation: input tokens bounded by the UTF-8 size of the request body (a BPE token always covers
at least one byte, so this never underestimates), output tokens from the request's own cap (each
dialect knows its field: max_completion_tokens / max_tokens times n, max_output_tokens,
maxOutputTokens), else the configured default cap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from server.budget import Hold
from server.clock import now_ms
from server.errors import GatewayError, bad_request, model_not_found
from server.events.outbox import rate_limited_event
from server.gateway import Gateway
from server.keys import authenticate
from server.limits import Admission, Check
from server.metering import charge_for, estimate_tokens
from server.snapshot import ModelEntry
from server.types import Call, Caller, Usage

MINUTE = 60.0


@dataclass(slots=True)
class Ticket:
    """Everything admission granted a call; settlement resolves it exactly once."""

    caller: Caller
    call: Call
    model: ModelEntry
    admission: Admission
    hold: Hold
    dialect: Any


def admit(gw: Gateway, secret: str | None, client_ip: str) -> Caller:
    """The per-IP safety net, then the key (hash lookup, constant-time compare), expiry, IP scope."""
    limits = gw.settings.limits
    ip_window = gw.limiter.window(("ip", client_ip), limits.ip_requests, limits.ip_window_seconds)
    try:
        gw.limiter.admit([Check(ip_window, 1, "per-IP safety net", "requests")], time.monotonic())
    except GatewayError as exc:
        _rate_limited(gw, f"ip_{client_ip}", None, exc)
        raise
    entry = authenticate(gw.snapshot, secret, now_ms())
    entry.scopes.check_ip(client_ip)
    project = gw.snapshot.projects_by_id[entry.project_id]
    return Caller(project_id=project.id, key_id=entry.id, client_ip=client_ip, key=entry, project=project)


def authorize(gw: Gateway, caller: Caller, call: Call, capability: str) -> ModelEntry:
    model = gw.snapshot.models.get(call.model)
    assert caller.key is not None
    caller.key.scopes.check_call(call.endpoint_class, call.model)
    if model is None:
        raise model_not_found(call.model)
    if capability not in model.capabilities:
        raise bad_request(f"The model '{call.model}' does not support {capability}.", "model_not_supported", "model")
    return model


def limit(gw: Gateway, caller: Caller, call: Call, max_output: int | None) -> Admission:
    """Key RPM/TPM and the project's plan limits for this endpoint class, all or nothing."""
    assert caller.key is not None and caller.project is not None
    scopes = caller.key.scopes
    tokens = estimate_tokens(call.body_bytes) + (max_output or 0)
    window = gw.limiter.window
    checks: list[Check] = []
    if scopes.rpm:
        checks.append(Check(window(("key-rpm", caller.key_id), scopes.rpm, MINUTE), 1, "key", "requests"))
    if scopes.tpm:
        checks.append(Check(window(("key-tpm", caller.key_id), scopes.tpm, MINUTE), tokens, "key", "tokens"))
    plan_name = caller.project.plan or "default"
    plan = gw.settings.plans.get(plan_name)
    if plan is not None:
        rpm = plan.rpm.get(call.endpoint_class)  # type: ignore[call-overload]
        if rpm:
            key = ("plan-rpm", caller.project_id, call.endpoint_class)
            checks.append(Check(window(key, rpm, MINUTE), 1, f"plan '{plan_name}' {call.endpoint_class}", "requests"))
        if plan.tpm:
            key = ("plan-tpm", caller.project_id)
            checks.append(Check(window(key, plan.tpm, MINUTE), tokens, f"plan '{plan_name}'", "tokens"))
    try:
        admission = gw.limiter.admit(checks, time.monotonic())
    except GatewayError as exc:
        _rate_limited(gw, f"key_{caller.key_id}", caller.project_id, exc)
        raise
    call.headers.update(admission.headers)
    return admission


def worst_case_micro(gw: Gateway, call: Call, model: ModelEntry, max_output: int | None) -> int:
    input_bound = call.body_bytes
    output = gw.settings.limits.default_max_output_tokens if max_output is None else max_output
    return charge_for(Usage(input_tokens=input_bound, output_tokens=output), model.rates).micro


def reserve(gw: Gateway, caller: Caller, call: Call, model: ModelEntry, max_output: int | None) -> Hold:
    assert caller.key is not None and caller.project is not None
    return gw.budgets.reserve(
        caller.project_id,
        caller.key_id,
        worst_case_micro(gw, call, model, max_output),
        project_budget=caller.project.monthly_budget_micro,
        key_budget=caller.key.scopes.monthly_budget_micro,
        prepaid=caller.project.prepaid,
        now_ms=now_ms(),
    )


def _rate_limited(gw: Gateway, subject: str, project_id: str | None, exc: GatewayError) -> None:
    if gw.rate_limited_sampler.due(subject, now_ms()):
        event_id, payload = rate_limited_event(subject, project_id, exc.message)
        gw.store.add_event(event_id, "request.rate_limited", project_id, payload, now_ms())
