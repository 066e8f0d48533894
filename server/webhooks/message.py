"""What one delivery says: the event body and its Standard Webhooks signature headers.

The body is `{"id", "object": "event", "type", "created_at" (unix seconds), "data"}` with the outbox
payload as `data`, where every integer `*_micro` amount is joined by the same amount in credits as a
decimal string (`amount_micro: 1500000` → `amount: "1.5"`). It is rendered from the stored event the same
way on every attempt. Signing follows the Standard Webhooks spec (the scheme OpenAI's webhooks use) with
the `standardwebhooks` package: `webhook-id` is the event id (stable across retries, so receivers
deduplicate by it), `webhook-timestamp` the attempt's time, `webhook-signature` one `v1,<base64 HMAC-SHA256
of "id.timestamp.body">` per live secret, space-separated (two during a rotation's overlap).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from standardwebhooks import Webhook

from server.money import format_credits

SECRET_PREFIX = "whsec_"
USER_AGENT = "llm-gateway-webhooks/1"


def new_secret() -> str:
    """A signing secret as Standard Webhooks writes them: `whsec_` and 24 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def with_credits(data: Mapping[str, Any]) -> dict[str, Any]:
    """The payload plus, beside each integer `x_micro`, `x` in credits (a decimal string)."""
    out = dict(data)
    for name, value in data.items():
        if name.endswith("_micro") and isinstance(value, int) and not isinstance(value, bool):
            out.setdefault(name.removesuffix("_micro"), format_credits(value))
    return out


def body(event_id: str, event_type: str, created_ms: int, payload: Mapping[str, Any]) -> bytes:
    """The JSON body of an event, identical on every attempt."""
    return orjson.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": event_type,
            "created_at": created_ms // 1000,
            "data": with_credits(payload),
        }
    )


def signature(signing_secrets: Sequence[str], event_id: str, timestamp_s: int, payload: bytes) -> str:
    """`v1,<sig>` per secret, space-separated; a receiver accepts the message if any one matches."""
    when = datetime.fromtimestamp(timestamp_s, tz=UTC)
    text = payload.decode()
    return " ".join(Webhook(secret).sign(event_id, when, text) for secret in signing_secrets)


def headers(signing_secrets: Sequence[str], event_id: str, timestamp_s: int, payload: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "accept-encoding": "identity",
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp_s),
        "webhook-signature": signature(signing_secrets, event_id, timestamp_s, payload),
    }
