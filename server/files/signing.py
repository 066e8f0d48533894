"""Signed download URLs for stored files: `/v1/files/{id}/content?expires=<unix s>&signature=<hex>`.

The signature is HMAC-SHA256 over "file-url|<file id>|<expires>" with a key derived from the ledger key
(kept outside the database, next to config.toml), so whoever can read the database cannot mint URLs,
and rotating nothing else is needed. A URL works without an API key until it expires; a changed id,
expiry or signature fails the constant-time comparison. Deleting the file ends every URL to it.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

PURPOSE = b"gateway signed file URLs v1"


class UrlSigner:
    def __init__(self, key: bytes, ttl_s: int) -> None:
        self._key = key
        self.ttl_s = ttl_s

    def _signature(self, file_id: str, expires: int) -> str:
        return hmac.new(self._key, f"file-url|{file_id}|{expires}".encode(), hashlib.sha256).hexdigest()

    def sign(self, file_id: str, now_s: int) -> tuple[int, str]:
        expires = now_s + self.ttl_s
        return expires, self._signature(file_id, expires)

    def url(self, base_url: str, file_id: str, now_s: int) -> str:
        """The absolute URL (`base_url` is the gateway's scheme and host, without a trailing slash)."""
        expires, signature = self.sign(file_id, now_s)
        return f"{base_url}/v1/files/{file_id}/content?{urlencode({'expires': expires, 'signature': signature})}"

    def valid(self, file_id: str, expires: str | None, signature: str | None, now_s: int) -> bool:
        """A URL's query checked: well formed, not expired, signature equal in constant time."""
        if not expires or not signature or not expires.isdigit() or len(expires) > 12:
            return False
        expected = self._signature(file_id, int(expires))
        return hmac.compare_digest(expected, signature) and int(expires) >= now_s
