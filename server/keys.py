"""API keys and admin tokens: generation, hashing at rest, and constant-time authentication.

A key is shown once; only its SHA-256 (the lookup index) and a short display prefix are stored.
Lookup is a dict hit on the hash, followed by a constant-time comparison of the digests.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from server.errors import INVALID_API_KEY, KEY_EXPIRED, KEY_REVOKED
from server.request_facts import note_key
from server.snapshot import KeyEntry, Snapshot

KEY_PREFIX = "gw_live_"
ADMIN_PREFIX = "gwa_"
DISPLAY_CHARS = 12


def new_secret(prefix: str = KEY_PREFIX) -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(secret: str) -> str:
    return secret[:DISPLAY_CHARS]


def new_id(kind: str) -> str:
    """Prefixed text ids (prj_, key_, adm_) as the architecture fixes them."""
    return f"{kind}_{secrets.token_hex(8)}"


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


def authenticate(snapshot: Snapshot, secret: str | None, now_ms: int) -> KeyEntry:
    """The key entry for a presented secret, or the documented 401/403."""
    if not secret or not secret.startswith(KEY_PREFIX):
        raise INVALID_API_KEY()
    digest = hash_secret(secret)
    entry = snapshot.keys_by_hash.get(digest)
    if entry is None:
        raise INVALID_API_KEY()
    if not hmac.compare_digest(entry.key_hash, digest):
        # The previous secret of a rotated key: valid only during its grace period.
        previous = entry.prev_key_hash or ""
        until = entry.prev_valid_until_ms or 0
        if not (hmac.compare_digest(previous, digest) and now_ms < until):
            raise INVALID_API_KEY()
    if entry.revoked_ms is not None:
        raise KEY_REVOKED()
    if entry.expires_ms is not None and entry.expires_ms <= now_ms:
        raise KEY_EXPIRED()
    entry.last_used_ms = now_ms  # in memory only; key_activity.py persists it in batches
    note_key(entry.prefix)
    return entry


def is_admin(snapshot: Snapshot, secret: str | None, env_token: str | None) -> bool:
    if not secret:
        return False
    if env_token and hmac.compare_digest(secret.encode(), env_token.encode()):
        return True
    digest = hash_secret(secret)
    return any(hmac.compare_digest(digest, known) for known in snapshot.admin_hashes)
