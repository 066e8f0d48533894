"""The one exception translators raise, so they stay free of the gateway's HTTP-aware error type.

Callers at the edge turn it into a GatewayError (status, code, param) in whichever shape they speak.
"""

from __future__ import annotations


class TranslationError(ValueError):
    """A body that cannot be expressed in the target format (or an upstream fragment that signals failure)."""

    def __init__(
        self, message: str, code: str = "invalid_request", param: str | None = None, status: int = 400
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.status = status
