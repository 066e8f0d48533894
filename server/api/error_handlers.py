"""One exception-handler map: every error leaves in OpenAI's shape."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException

from server.api.common import json_response
from server.errors import GatewayError

log = logging.getLogger("gateway.errors")

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large", 400: "invalid_request"}


def gateway_error(_: Request[Any, Any, Any], exc: GatewayError) -> Response[Any]:
    headers = dict(exc.headers)
    if getattr(exc, "retry_after", None) is not None and "retry-after" not in headers:
        headers["retry-after"] = str(int(exc.retry_after or 0))  # type: ignore[attr-defined]
    return json_response(exc.openai_body(), headers=headers, status=exc.status)


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    message = exc.detail
    if status == 404:
        message = f"Unknown route: {request.method} {request.url.path}"
    elif status == 413:
        message = "The request body is larger than this gateway accepts."
    return gateway_error(request, GatewayError(status, message, code=_HTTP_CODES.get(status, "http_error")))


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return gateway_error(request, GatewayError(500, "The gateway hit an internal error.", code="internal_error"))
