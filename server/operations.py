"""Operator actions behind the admin API: write the database first, then update the snapshot, then tell the
other processes of a fleet (server/state/invalidation.py; nothing to tell on one process)."""

from __future__ import annotations

import re
from typing import Any

from server.billing.invoices import parse_tax_rate
from server.clock import now_ms
from server.errors import (
    AMBIGUOUS_KEY,
    DUPLICATE_ADJUSTMENT,
    EMPTY_UPDATE,
    INVALID_AMOUNT,
    INVALID_BILLING,
    INVALID_EMAIL,
    INVALID_FIELD,
    INVALID_ID,
    INVALID_NAME,
    INVALID_TYPE,
    KEY_NOT_FOUND,
    MISSING_REASON,
    PROJECT_EXISTS,
    PROJECT_NOT_FOUND,
    ROTATE_REVOKED,
    TOO_LONG,
    UNKNOWN_PLAN,
)
from server.events.outbox import key_revoked_event, wallet_recharged_event
from server.gateway import Gateway
from server.keys import KEY_PREFIX, display_prefix, hash_secret, new_id, new_secret
from server.scopes import KeyScopes
from server.snapshot import KeyEntry, ProjectEntry
from server.state.changes import key_message, project_message
from server.store.protocol import Event

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def find_project(gw: Gateway, ref: str) -> ProjectEntry:
    project = gw.snapshot.project(ref)
    if project is None:
        raise PROJECT_NOT_FOUND(ref=ref)
    return project


def find_key(gw: Gateway, ref: str) -> KeyEntry:
    """A key by id, or by its display prefix as `keys list` shows it (gw_live_AbCd, with or without …)."""
    key = gw.snapshot.keys_by_id.get(ref)
    if key is not None:
        return key
    prefix = ref.rstrip("….")
    matches = [k for k in gw.snapshot.keys_by_id.values() if prefix.startswith(KEY_PREFIX) and k.prefix == prefix]
    if len(matches) > 1:
        ids = ", ".join(sorted(k.id for k in matches))
        raise AMBIGUOUS_KEY(prefix=prefix, ids=ids)
    if not matches:
        raise KEY_NOT_FOUND(ref=ref)
    return matches[0]


def _check_plan(gw: Gateway, plan: str | None) -> None:
    if plan is not None and plan not in gw.settings.plans:
        known = ", ".join(sorted(gw.settings.plans)) or "none configured"
        raise UNKNOWN_PLAN(plan=plan, known=known, param="plan")


def _check_billing(billing: str) -> None:
    if billing not in ("postpaid", "prepaid"):
        raise INVALID_BILLING(param="billing")


async def create_project(gw: Gateway, name: str, plan: str | None = None, billing: str = "postpaid") -> ProjectEntry:
    if not isinstance(name, str) or not _NAME.match(name):
        raise INVALID_NAME(param="name")
    _check_billing(billing)
    _check_plan(gw, plan)
    if gw.snapshot.projects_by_name.get(name):
        raise PROJECT_EXISTS(name=name, param="name")
    project = ProjectEntry(id=new_id("prj"), name=name, plan=plan, billing=billing, created_ms=now_ms())
    await gw.store.create_project(
        {"id": project.id, "name": name, "plan": plan, "billing": billing, "created_ms": project.created_ms}
    )
    gw.snapshot.put_project(project)
    gw.state.publish(project_message(project))
    return project


async def set_project(gw: Gateway, ref: str, **values: Any) -> ProjectEntry:
    """Change a project's plan, billing mode or monthly budget (None clears a budget)."""
    project = find_project(gw, ref)
    if "plan" in values:
        _check_plan(gw, values["plan"])
    if "billing" in values:
        _check_billing(values["billing"])
    await gw.store.update_project(project.id, **values)
    for name, value in values.items():
        setattr(project, name, value)
    gw.state.publish(project_message(project))
    return project


_DETAIL_LIMITS = {"name": 200, "address": 1000, "tax_id": 64, "email": 254}


async def set_billing_details(gw: Gateway, ref: str, values: dict[str, Any]) -> ProjectEntry:
    """Who the project's invoices are addressed to (name, address, tax id, email) and its own tax rate.
    Only the fields given change; '' clears a text field, a null tax_rate falls back to the default."""
    columns: dict[str, Any] = {}
    unknown = set(values) - {*_DETAIL_LIMITS, "tax_rate"}
    if unknown:
        raise INVALID_FIELD(names=", ".join(sorted(unknown)))
    for name, limit in _DETAIL_LIMITS.items():
        if name not in values:
            continue
        value = values[name]
        if value is not None and not isinstance(value, str):
            raise INVALID_TYPE(field=name, what="a string")
        text = (value or "").strip()
        if len(text) > limit:
            raise TOO_LONG(field=name, limit=limit)
        if name == "email" and text and ("@" not in text or any(c.isspace() for c in text)):
            raise INVALID_EMAIL(text=text, param=name)
        columns[f"billing_{name}"] = text or None
    if "tax_rate" in values:
        columns["tax_rate"] = parse_tax_rate(values["tax_rate"])
    if not columns:
        raise EMPTY_UPDATE(wanted="name, address, tax_id, email or tax_rate")
    return await set_project(gw, ref, **columns)


async def set_key_budget(gw: Gateway, key_id: str, monthly_budget_micro: int | None) -> KeyEntry:
    key = find_key(gw, key_id)
    scopes = {**key.scopes.as_dict(), "monthly_budget_micro": monthly_budget_micro}
    parsed = KeyScopes.parse(scopes)
    await gw.store.update_key_scopes(key.id, parsed.as_dict(), key.expires_ms)
    key.scopes = parsed
    gw.state.publish(key_message(key))
    return key


async def create_key(
    gw: Gateway,
    project_ref: str,
    name: str | None = None,
    expires_ms: int | None = None,
    scopes: dict[str, Any] | None = None,
) -> tuple[KeyEntry, str]:
    """A new key; the secret is returned once and never stored."""
    project = find_project(gw, project_ref)
    parsed = KeyScopes.parse(scopes or {})
    secret = new_secret()
    key = KeyEntry(
        id=new_id("key"),
        project_id=project.id,
        name=name,
        prefix=display_prefix(secret),
        key_hash=hash_secret(secret),
        scopes=parsed,
        created_ms=now_ms(),
        expires_ms=expires_ms,
    )
    row: dict[str, Any] = {
        "id": key.id,
        "project_id": key.project_id,
        "name": name,
        "key_hash": key.key_hash,
        "prefix": key.prefix,
        "scopes": parsed.as_dict(),
        "created_ms": key.created_ms,
        "expires_ms": expires_ms,
        "revoked_ms": None,
    }
    await gw.store.create_key(row)
    gw.snapshot.put_key(key)
    gw.state.publish(key_message(key))
    return key, secret


async def rotate_key(gw: Gateway, key_id: str, grace_s: int = 0) -> tuple[KeyEntry, str]:
    """A new secret for the same key id and scopes; the old one works only during `grace_s`."""
    key = find_key(gw, key_id)
    if key.revoked_ms is not None:
        raise ROTATE_REVOKED(key=key_id)
    secret = new_secret()
    old_hash = key.key_hash
    prev_hash, until = (old_hash, now_ms() + grace_s * 1000) if grace_s > 0 else (None, None)
    new_hash = hash_secret(secret)
    await gw.store.rotate_key(key.id, new_hash, display_prefix(secret), prev_hash, until)
    if key.prev_key_hash:
        gw.snapshot.forget_hash(key.prev_key_hash)
    if prev_hash is None:
        gw.snapshot.forget_hash(old_hash)  # refused at once
    key.key_hash, key.prefix = new_hash, display_prefix(secret)
    key.prev_key_hash, key.prev_valid_until_ms = prev_hash, until
    gw.snapshot.put_key(key)
    gw.state.publish(key_message(key))
    return key, secret


async def revoke_key(gw: Gateway, key_id: str) -> KeyEntry:
    key = find_key(gw, key_id)
    if key.revoked_ms is None:
        when = now_ms()
        event_id, payload = key_revoked_event(key.id, key.project_id, when)
        await gw.store.revoke_key(key_id, when, (Event(event_id, "key.revoked", key.project_id, payload, when),))
        key.revoked_ms = when  # the snapshot entry is shared: effective on the next request
        gw.state.publish(key_message(key))  # and on every other process of a fleet within moments
    gw.sessions.end_key(key.id)  # and its open realtime sessions end now
    return key


async def credit_wallet(gw: Gateway, ref: str, amount_micro: int, reason: str, source_id: str | None) -> dict[str, Any]:
    """An operator adjustment (positive or negative), audited by its reason and unique by its id.

    Idempotent: a retry with the same id, project and amount returns the recorded entry (marked
    `replayed`) and moves nothing; the same id with another amount or project is a 409."""
    project = find_project(gw, ref)
    if not reason.strip():
        raise MISSING_REASON(param="reason")
    if amount_micro == 0:
        raise INVALID_AMOUNT(field="amount", detail="the amount must not be zero")
    if source_id is not None and (
        not isinstance(source_id, str) or not 0 < len(source_id) <= 200 or not source_id.isprintable()
    ):
        raise INVALID_ID(param="id")
    source, when = source_id or new_id("adj"), now_ms()
    # Every wallet credit announces itself (wallet.recharged), in the transaction of its ledger entry.
    recharged = wallet_recharged_event(
        project.id, amount_micro, "adjustment", f"adjustment_{source}", when, adjustment_id=source
    )
    events = (recharged,) if amount_micro > 0 else ()
    with gw.budgets.crediting() as credit:  # on Redis: fenced from the reconciliation until Redis has it
        entry, created = await gw.store.append_ledger(
            project.id, "adjustment", source, amount_micro, reason.strip(), when, events
        )
        if created:
            credit(project.id, amount_micro)
    if created:
        return {**entry, "replayed": False}
    if entry["project_id"] != project.id or entry["amount_micro"] != amount_micro:
        raise DUPLICATE_ADJUSTMENT(ref=source_id, param="id")
    return {**entry, "replayed": True}
