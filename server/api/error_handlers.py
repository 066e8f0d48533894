"""Exception-handler maps: every error becomes a GatewayError, rendered in the front door's shape
(OpenAI's everywhere, Anthropic's on /v1/messages, Google's on the Gemini routes)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException

from server.api.common import json_response
from server.errors import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    REQUEST_TOO_LARGE,
    GatewayError,
)
from server.translate import anthropic, gemini

log = logging.getLogger("gateway.errors")

_HTTP_ERRORS = {404: NOT_FOUND, 405: METHOD_NOT_ALLOWED, 413: REQUEST_TOO_LARGE, 400: INVALID_REQUEST}

Shape = Callable[[GatewayError], dict[str, Any]]
Handler = Callable[[Request[Any, Any, Any], Exception], Response[Any]]


def as_gateway_error(request: Request[Any, Any, Any], exc: Exception) -> GatewayError:
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, HTTPException):
        status = exc.status_code
        message = exc.detail
        if status == 404:
            message = f"Unknown route: {request.method} {request.url.path}"
        elif status == 413:
            message = "The request body is larger than this gateway accepts."
        row = _HTTP_ERRORS.get(status)
        if row is None:  # an HTTP status Litestar chose (e.g. a parameter out of range is its 400)
            return INVALID_REQUEST(detail=message) if status < 500 else INTERNAL_ERROR()
        return row(detail=message)
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return INTERNAL_ERROR()


def handlers(shape: Shape) -> dict[type[Exception], Handler]:
    def render(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        error = as_gateway_error(request, exc)
        headers = dict(error.headers)
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None and "retry-after" not in headers:
            headers["retry-after"] = str(max(1, min(int(retry_after), 86_400)))
        return json_response(shape(error), headers=headers, status=error.status)

    return {GatewayError: render, HTTPException: render, Exception: render}


OPENAI_ERRORS = handlers(lambda error: error.openai_body())
ANTHROPIC_ERRORS = handlers(lambda error: anthropic.error_body(error.status, error.message))
GEMINI_ERRORS = handlers(lambda error: gemini.error_body(error.status, error.message))
