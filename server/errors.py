"""One error type for the whole gateway, rendered in OpenAI's shape at the edge.

GatewayError carries the HTTP status, the OpenAI `type` and `code`, and optional headers
(Retry-After). Providers raise `UpstreamError` (a GatewayError subclass) so routing can tell
retryable failures (connect, timeout, 429, 5xx) from final ones (other 4xx).
"""

from __future__ import annotations

from typing import Any

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "internal_server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "upstream_timeout",
}


class GatewayError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}
        self.error_type = error_type or _TYPES.get(status, "api_error")

    def openai_body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class UpstreamError(GatewayError):
    """A provider call failed. `retryable` decides whether the next target is tried."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        retryable: bool,
        upstream_status: int | str,
        body: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, message, code="upstream_error")
        self.retryable = retryable
        self.upstream_status = upstream_status
        self.body = body
        self.retry_after = retry_after


def bad_request(message: str, code: str = "invalid_request", param: str | None = None) -> GatewayError:
    return GatewayError(400, message, code=code, param=param)


def invalid_api_key() -> GatewayError:
    return GatewayError(401, "Invalid API key provided.", code="invalid_api_key")


def model_not_found(model: str) -> GatewayError:
    return GatewayError(404, f"The model '{model}' does not exist.", code="model_not_found", param="model")


def metering_unavailable() -> GatewayError:
    return GatewayError(
        503, "Usage could not be recorded; the request was refused (fail closed).", code="metering_unavailable"
    )
