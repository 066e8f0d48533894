"""Replay: a logged request sent again through the request path, and its two answers side by side.

The stored request body (secrets already scrubbed) goes through the same path as any call: the key's
scopes and limits, the budget and wallet, metering and the request log all apply, and the new row carries
`replay_of`. It runs as the key that sent the original, billed to its project; `project` bills another
project instead, as the operator (that project's plan limits, budget and wallet apply, no key scopes).
`model` swaps the public model; `target` ("provider:model") sends it to one upstream, priced as the
original's public model. A stream is read to its end here; the replay's answer is then read back from
the request log, so both sides are compared in the same stored shape (server/answers.py).

Refused with one clear reason when the original cannot be replayed: no stored body (off, expired,
dropped for disk), a request body cut at `max_body_bytes`, an endpoint with no replay, an inactive key.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from server.answers import gist
from server.clock import now_ms
from server.dialects.base import Dialect
from server.dialects.chat import CHAT, EMBEDDINGS
from server.dialects.gemini import GEMINI
from server.dialects.messages import MESSAGES
from server.dialects.responses import RESPONSES
from server.errors import (
    INVALID_VALUE,
    REPLAY_KEY_INACTIVE,
    REPLAY_UNAVAILABLE,
    REQUEST_NOT_FOUND,
    GatewayError,
)
from server.gateway import Gateway
from server.money import format_credits
from server.operations import find_project
from server.request_log import unpack, why_missing
from server.scopes import KeyScopes
from server.snapshot import KeyEntry
from server.types import Call, Caller, Target

DIALECTS: dict[str, Dialect] = {d.name: d for d in (CHAT, EMBEDDINGS, RESPONSES, MESSAGES, GEMINI)}
OPERATOR_KEY_ID = "operator"  # the key id of replays billed to another project


async def replay(
    gw: Gateway, ref: str, *, model: str | None = None, target: str | None = None, project: str | None = None
) -> dict[str, Any]:
    """Replay request `ref` (gateway id or client x-request-id: the newest) and compare the answers."""
    rows = await gw.store.requests_matching(ref, 1)
    if not rows:
        raise REQUEST_NOT_FOUND(ref=ref)
    original = rows[0]
    dialect = DIALECTS.get(original["endpoint"])
    if dialect is None:
        raise REPLAY_UNAVAILABLE(ref=original["id"], reason=f"{original['endpoint']} requests are not replayed")
    body = await _stored_request(gw, original)
    if model:
        body["model"] = model
    call = _call(body, original, _pin(gw, target, dialect))
    caller = _caller(gw, original, project)
    ticket = gw.path.start(caller, call, dialect)  # refusals (scopes, limits, budget) raise: nothing ran
    failure: GatewayError | None = None
    try:
        if call.stream:
            opened = await gw.path.open_stream(ticket)
            async for _ in opened.chunks:  # read to the end: the relay meters and logs it as it goes
                pass
        else:
            await gw.path.serve_unary(ticket)
    except GatewayError as exc:  # recorded like any failed call; shown beside the original
        failure = exc
    await gw.path.bodies.flush()  # the replay's row, usage and bodies are written before they are read back
    await gw.store.flush()
    again = (await gw.store.requests_matching(call.request_id, 1))[0]
    side = await _side(gw, again)
    if failure is not None:
        side["error"] = failure.openai_body()["error"]
    return {"original": await _side(gw, original), "replay": side}


async def _stored_request(gw: Gateway, original: dict[str, Any]) -> dict[str, Any]:
    found = await gw.store.read_bodies(original["id"])
    ref = original["id"]
    if found is None or found["request"] is None:
        reason = why_missing(gw.settings.logging, original["status"], original["started_ms"], now_ms())
        raise REPLAY_UNAVAILABLE(ref=ref, reason=reason)
    if found["request_truncated"]:
        limit = gw.settings.logging.max_body_bytes
        raise REPLAY_UNAVAILABLE(ref=ref, reason=f"its stored body was cut at [logging] max_body_bytes = {limit}")
    body = unpack(found["request"], False)
    if not isinstance(body, dict):
        raise REPLAY_UNAVAILABLE(ref=ref, reason="its stored body is not a JSON object")
    return body


def _call(body: dict[str, Any], original: dict[str, Any], pin: Target | None) -> Call:
    raw = orjson.dumps(body)
    return Call(
        request_id=str(uuid.uuid4()),
        endpoint=original["endpoint"],
        model=body.get("model") if isinstance(body.get("model"), str) else original["model"],
        body=body,
        stream=body.get("stream") is True,
        started_ms=now_ms(),
        body_bytes=len(raw),
        raw=raw,
        replay_of=original["id"],
        pin=pin,
    )


def _pin(gw: Gateway, target: str | None, dialect: Dialect) -> Target | None:
    """`provider:model` as a target; the provider must exist and serve the request's kind."""
    if not target:
        return None
    pin = Target.parse(target)
    provider = gw.providers.get(pin.provider)
    if provider is None or not pin.model:
        names = ", ".join(sorted(gw.providers))
        raise INVALID_VALUE(field="target", what=f"'provider:model' with a configured provider ({names})")
    if dialect.capability not in provider.capabilities:
        raise INVALID_VALUE(field="target", what=f"a provider that serves {dialect.capability}")
    return pin


def _caller(gw: Gateway, original: dict[str, Any], project: str | None) -> Caller:
    """The original key (its scopes and limits) on its project, or the operator on `project`."""
    if project is not None:
        entry = find_project(gw, project)
        operator = KeyEntry(
            id=OPERATOR_KEY_ID,
            project_id=entry.id,
            name="operator (replay)",
            prefix=OPERATOR_KEY_ID,
            key_hash="",
            scopes=KeyScopes(),
            created_ms=0,
        )
        return Caller(project_id=entry.id, key_id=operator.id, client_ip="replay", key=operator, project=entry)
    key = gw.snapshot.keys_by_id.get(original["key_id"])
    now = now_ms()
    state = None
    if key is None:
        state = "gone"
    elif key.revoked_ms is not None and key.revoked_ms <= now:
        state = "revoked"
    elif key.expires_ms is not None and key.expires_ms <= now:
        state = "expired"
    if key is None or state is not None:
        raise REPLAY_KEY_INACTIVE(ref=original["id"], state=state)
    project_entry = gw.snapshot.projects_by_id[key.project_id]
    return Caller(project_id=key.project_id, key_id=key.id, client_ip="replay", key=key, project=project_entry)


async def _side(gw: Gateway, row: dict[str, Any]) -> dict[str, Any]:
    """One side of the comparison: what served it, what it cost, how long it took, and its answer's gist."""
    found = await gw.store.read_bodies(row["id"])
    answer = unpack(found["response"], found["response_truncated"]) if found is not None else None
    started, ended = row.get("started_ms"), row.get("ended_ms")
    return {
        "id": row["id"],
        "model": row["model"],
        "provider": row.get("provider"),
        "upstream_model": row.get("upstream_model"),
        "status": row["status"],
        "http_status": row.get("http_status"),
        "error_code": row.get("error_code"),
        "stream": row["stream"],
        "input_tokens": row.get("input_tokens"),
        "output_tokens": row.get("output_tokens"),
        "cached_tokens": row.get("cached_tokens"),
        "cost_micro": row.get("cost_micro"),
        "cost": format_credits(row["cost_micro"]) if row.get("cost_micro") is not None else None,
        "latency_ms": ended - started if started and ended else None,
        "replay_of": row.get("replay_of"),
        "answer": gist(answer) if found is not None else None,
        "answer_truncated": bool(found and found["response_truncated"]),
    }
