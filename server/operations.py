"""Operator actions behind the admin API: write the database first, then update the snapshot."""

from __future__ import annotations

import re
from typing import Any

from server.clock import now_ms
from server.errors import GatewayError, bad_request
from server.gateway import Gateway
from server.keys import display_prefix, hash_secret, new_id, new_secret
from server.snapshot import KeyEntry, ProjectEntry

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _not_found(what: str, ref: str) -> GatewayError:
    return GatewayError(404, f"No {what} '{ref}'.", code=f"{what}_not_found")


def find_project(gw: Gateway, ref: str) -> ProjectEntry:
    project = gw.snapshot.project(ref)
    if project is None:
        raise _not_found("project", ref)
    return project


def find_key(gw: Gateway, key_id: str) -> KeyEntry:
    key = gw.snapshot.keys_by_id.get(key_id)
    if key is None:
        raise _not_found("key", key_id)
    return key


async def create_project(gw: Gateway, name: str, plan: str | None = None, billing: str = "postpaid") -> ProjectEntry:
    if not isinstance(name, str) or not _NAME.match(name):
        raise bad_request("Project names are 1-64 letters, digits, '.', '_' or '-'.", "invalid_name", "name")
    if billing not in ("postpaid", "prepaid"):
        raise bad_request("billing must be 'postpaid' or 'prepaid'.", "invalid_billing", "billing")
    if gw.snapshot.projects_by_name.get(name):
        raise GatewayError(409, f"A project named '{name}' already exists.", code="project_exists", param="name")
    project = ProjectEntry(id=new_id("prj"), name=name, plan=plan, billing=billing, created_ms=now_ms())
    await gw.store.create_project(
        {"id": project.id, "name": name, "plan": plan, "billing": billing, "created_ms": project.created_ms}
    )
    gw.snapshot.put_project(project)
    return project


async def create_key(
    gw: Gateway, project_ref: str, name: str | None = None, expires_ms: int | None = None
) -> tuple[KeyEntry, str]:
    """A new key; the secret is returned once and never stored."""
    project = find_project(gw, project_ref)
    secret = new_secret()
    key = KeyEntry(
        id=new_id("key"),
        project_id=project.id,
        name=name,
        prefix=display_prefix(secret),
        key_hash=hash_secret(secret),
        scopes={},
        created_ms=now_ms(),
        expires_ms=expires_ms,
    )
    row: dict[str, Any] = {
        "id": key.id,
        "project_id": key.project_id,
        "name": name,
        "key_hash": key.key_hash,
        "prefix": key.prefix,
        "scopes": key.scopes,
        "created_ms": key.created_ms,
        "expires_ms": expires_ms,
        "revoked_ms": None,
    }
    await gw.store.create_key(row)
    gw.snapshot.put_key(key)
    return key, secret


async def revoke_key(gw: Gateway, key_id: str) -> KeyEntry:
    key = find_key(gw, key_id)
    if key.revoked_ms is None:
        when = now_ms()
        await gw.store.revoke_key(key_id, when)
        key.revoked_ms = when  # the snapshot entry is shared: effective on the next request
    return key
