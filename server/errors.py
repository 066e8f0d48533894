"""One error type for the whole gateway, one table of the errors it raises, rendered at the edge.

GatewayError carries the HTTP status, the OpenAI `type` and `code`, and optional headers (Retry-After);
the edge renders it in OpenAI's, Anthropic's or Google's shape. Every error the gateway raises comes
from a row of the table below (`ErrorCode`: status, code, message template, and the type when it is
not the status's usual one), called with the template's fields: `raise INVALID_TYPE(field="n", what="an
integer")`. Providers raise `UpstreamError` (a GatewayError subclass) so routing can tell retryable
failures (connect, timeout, 429, 5xx) from final ones (other 4xx).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.translate.errors import TranslationError

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    431: "invalid_request_error",
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
        code: str = "upstream_error",
    ) -> None:
        super().__init__(status, message, code=code)
        self.retryable = retryable
        self.upstream_status = upstream_status
        self.body = body
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """One row of the table: the HTTP status, our code, the message template (str.format fields), and the
    OpenAI error type when it is not the status's usual one. Calling it makes the GatewayError; `param`
    names the offending field (by default the template's `field`)."""

    status: int
    code: str
    template: str
    error_type: str | None = None

    def __call__(
        self, *, param: str | None = None, headers: dict[str, str] | None = None, **fields: Any
    ) -> GatewayError:
        name = param if param is not None else fields.get("field")
        return GatewayError(
            self.status,
            self.template.format(**fields),
            code=self.code,
            param=name,
            headers=headers,
            error_type=self.error_type,
        )


# ---------------------------------------------------------------------------------------------- the table
# 400: the request is malformed
INVALID_JSON = ErrorCode(400, "invalid_json", "The request body is not valid JSON: {detail}.")
NOT_AN_OBJECT = ErrorCode(400, "invalid_json", "The request body must be a JSON object.")
MISSING_MODEL = ErrorCode(400, "missing_model", "you must provide a model parameter")
MISSING_FIELD = ErrorCode(400, "missing_field", "'{field}' is required.")
INVALID_TYPE = ErrorCode(400, "invalid_type", "'{field}' must be {what}.")
INVALID_VALUE = ErrorCode(400, "invalid_value", "'{field}' must be {what}.")
INVALID_REQUEST = ErrorCode(400, "invalid_request", "{detail}")
INVALID_INPUT = ErrorCode(400, "invalid_input", "'{field}' must be {what}.")
INVALID_ENCODING_FORMAT = ErrorCode(400, "invalid_encoding_format", "'encoding_format' must be 'float' or 'base64'.")
INVALID_MULTIPART = ErrorCode(400, "invalid_multipart", "{detail}")
MODEL_NOT_SUPPORTED = ErrorCode(400, "model_not_supported", "The model '{model}' does not support {capability}.")
INVALID_SCOPE = ErrorCode(400, "invalid_scope", "{detail}")
INVALID_AMOUNT = ErrorCode(400, "invalid_amount", "'{field}': {detail}.")
MISSING_AMOUNT = ErrorCode(400, "missing_amount", "'{field}' is required{hint}.")
MISSING_SCOPE = ErrorCode(400, "missing_scope", "Give 'project' or 'key'.")
MISSING_REASON = ErrorCode(400, "missing_reason", "An adjustment needs a reason.")
EMPTY_UPDATE = ErrorCode(400, "empty_update", "Nothing to change: give {wanted}.")
RELOAD_REFUSED = ErrorCode(400, "invalid_config", "Reload refused; the running config stays in force: {detail}")
INVALID_GROUP = ErrorCode(400, "invalid_group", "'by' must be one of {choices}.")
INVALID_MONTH = ErrorCode(400, "invalid_month", "month must look like 2026-10 (or be 'last').")
INVALID_TAX_RATE = ErrorCode(400, "invalid_tax_rate", "tax_rate must be a percent from 0 to 100, e.g. 20 or 7.25.")
INVALID_NAME = ErrorCode(400, "invalid_name", "Project names are 1-64 letters, digits, '.', '_' or '-'.")
INVALID_BILLING = ErrorCode(400, "invalid_billing", "billing must be 'postpaid' or 'prepaid'.")
UNKNOWN_PLAN = ErrorCode(400, "unknown_plan", "Unknown plan '{plan}' (plans: {known}).")
INVALID_FIELD = ErrorCode(400, "invalid_field", "Unknown billing detail(s): {names}.")
TOO_LONG = ErrorCode(400, "too_long", "'{field}' is longer than {limit} characters.")
INVALID_EMAIL = ErrorCode(400, "invalid_email", "'{text}' is not an email address.")
INVALID_ID = ErrorCode(400, "invalid_id", "An adjustment id is 1-200 printable characters.")
INVALID_SIGNATURE = ErrorCode(400, "invalid_signature", "Invalid or stale Stripe signature.")
INVALID_EVENT = ErrorCode(400, "invalid_event", "Not a Stripe event.")
INVALID_IDEMPOTENCY_KEY = ErrorCode(400, "invalid_idempotency_key", "An Idempotency-Key is 1-255 printable characters.")
URL_REFUSED = ErrorCode(400, "url_refused", "Webhook URL refused: {detail}.")
UNKNOWN_EVENT_TYPE = ErrorCode(400, "unknown_event_type", "Unknown event type '{event}'; use {known}.")
URL_NOT_FETCHED = ErrorCode(400, "url_not_fetched", "{detail}")  # a remote media URL refused (SSRF) or unreachable
INVALID_FILE = ErrorCode(400, "invalid_file", "{detail}")
TOO_MANY_ENDPOINTS = ErrorCode(400, "too_many_endpoints", "A project may have at most {limit} webhook endpoints.")
# 400 and 502: what a translator between API shapes refuses (server.translate raises TranslationError)
UNSUPPORTED_CONTENT = ErrorCode(400, "unsupported_content", "{detail}")
UNSUPPORTED_PARAMETER = ErrorCode(400, "unsupported_parameter", "{detail}")
UNSUPPORTED_TOOL = ErrorCode(400, "unsupported_tool", "{detail}")
UNSUPPORTED_INPUT = ErrorCode(400, "unsupported_input", "{detail}")
AUDIO_NOT_SUPPORTED = ErrorCode(400, "audio_not_supported_by_model", "{detail}")
UNRESOLVED_FILE = ErrorCode(400, "unresolved_file", "{detail}")
UPSTREAM_INVALID_RESPONSE = ErrorCode(502, "upstream_invalid_response", "{detail}")
UPSTREAM_STREAM_ERROR = ErrorCode(502, "upstream_stream_error", "{detail}")
UPSTREAM_SERVER_ERROR = ErrorCode(502, "server_error", "{detail}")
# 401, 402, 403: who may do what, and with what money
INVALID_API_KEY = ErrorCode(401, "invalid_api_key", "Invalid API key provided.")
INVALID_ADMIN_TOKEN = ErrorCode(401, "invalid_admin_token", "A valid admin token is required.")
BUDGET_EXCEEDED = ErrorCode(
    402,
    "budget_exceeded",
    "Monthly {scope} budget exceeded: {used} of {budget} spent or reserved and this request may cost up to"
    " {cost}. The budget resets at {resets}.",
)
INSUFFICIENT_CREDITS = ErrorCode(
    402,
    "insufficient_credits",
    "Insufficient credits: this request may cost up to {cost} but the prepaid wallet has {available} available."
    " Top up to continue.",
)
INSUFFICIENT_QUOTA = ErrorCode(402, "insufficient_quota", "{detail}")  # a realtime response.create refused for money
KEY_REVOKED = ErrorCode(403, "key_revoked", "This API key has been revoked.")
KEY_EXPIRED = ErrorCode(403, "key_expired", "This API key has expired.")
IP_NOT_ALLOWED = ErrorCode(403, "ip_not_allowed", "This API key may not be used from {address}.")
ENDPOINT_NOT_ALLOWED = ErrorCode(403, "endpoint_not_allowed", "This API key may not call {endpoint_class} endpoints.")
MODEL_NOT_ALLOWED = ErrorCode(403, "model_not_allowed", "This API key may not use the model '{model}'.")
SIGNED_URL_INVALID = ErrorCode(
    403, "signed_url_invalid", "This download URL is invalid or has expired; ask for a new one (or send an API key)."
)
# 404, 409, 413, 429
NOT_FOUND = ErrorCode(404, "not_found", "{detail}")
METHOD_NOT_ALLOWED = ErrorCode(405, "method_not_allowed", "{detail}")
MODEL_NOT_FOUND = ErrorCode(404, "model_not_found", "The model '{model}' does not exist.")
PROJECT_NOT_FOUND = ErrorCode(404, "project_not_found", "No project '{ref}'.")
KEY_NOT_FOUND = ErrorCode(404, "key_not_found", "No key '{ref}'.")
REQUEST_NOT_FOUND = ErrorCode(404, "request_not_found", "No request '{ref}'.")
WEBHOOK_ENDPOINT_NOT_FOUND = ErrorCode(404, "webhook_endpoint_not_found", "No webhook endpoint '{ref}'.")
DELIVERY_NOT_FOUND = ErrorCode(404, "delivery_not_found", "No webhook delivery '{ref}'.")
FILE_NOT_FOUND = ErrorCode(404, "file_not_found", "No such File object: {ref}")
JOB_NOT_FOUND = ErrorCode(404, "job_not_found", "No {kind} job '{ref}'.")
JOB_NOT_FINISHED = ErrorCode(409, "job_not_finished", "The {kind} job '{ref}' is {status}; {hint}.")
PROJECT_EXISTS = ErrorCode(409, "project_exists", "A project named '{name}' already exists.")
AMBIGUOUS_KEY = ErrorCode(409, "ambiguous_key", "Several keys start with '{prefix}' ({ids}); use the id.")
ROTATE_REVOKED = ErrorCode(409, "key_revoked", "Key '{key}' is revoked; create a new one.")
DUPLICATE_ADJUSTMENT = ErrorCode(
    409, "duplicate_adjustment", "Adjustment '{ref}' was already recorded with another amount or project; use a new id."
)
REPLAY_UNAVAILABLE = ErrorCode(409, "replay_unavailable", "Request {ref} cannot be replayed: {reason}.")
REPLAY_KEY_INACTIVE = ErrorCode(
    409,
    "replay_key_inactive",
    "The key that sent {ref} is {state}; bill the replay to a project instead (--project).",
)
ENDPOINT_NOT_ENABLED = ErrorCode(409, "endpoint_not_enabled", "Webhook endpoint '{ref}' is {status}; {hint}.")
MONTH_OPEN = ErrorCode(409, "month_open", "{month} has not ended; only closed months are sent to Stripe.")
IDEMPOTENCY_KEY_IN_FLIGHT = ErrorCode(
    409,
    "idempotency_key_in_flight",
    "A request with this Idempotency-Key is still in progress; retry once it has finished.",
)
IDEMPOTENCY_KEY_MISMATCH = ErrorCode(
    422,
    "idempotency_key_mismatch",
    "This Idempotency-Key was used with another request body; use a new key for a different request.",
)
REQUEST_TIMEOUT = ErrorCode(408, "request_timeout", "{detail}", "invalid_request_error")
REQUEST_TOO_LARGE = ErrorCode(413, "request_too_large", "{detail}")
HEADERS_TOO_LARGE = ErrorCode(431, "request_header_fields_too_large", "{detail}", "invalid_request_error")
FILE_TOO_LARGE = ErrorCode(413, "file_too_large", "File '{name}' is larger than {limit} bytes.")
STORAGE_QUOTA_EXCEEDED = ErrorCode(
    413,
    "storage_quota_exceeded",
    "Storage quota exceeded: {used} bytes in use and this upload may add {adding}, past the plan's limit of {limit}"
    " bytes. Delete files (DELETE /v1/files/{{id}}) or move to a plan with more storage.",
)
RATE_LIMIT_EXCEEDED = ErrorCode(429, "rate_limit_exceeded", "{detail}")
TOO_MANY_OPEN_CALLS = ErrorCode(429, "too_many_open_calls", "{detail}")  # a project past its share of a provider
TOO_MANY_SESSIONS = ErrorCode(429, "too_many_sessions", "{detail}")  # realtime sessions open at once
# Realtime: what ends a session or refuses one of its events (sent as an `error` event, then the close)
INVALID_CLIENT_EVENT = ErrorCode(400, "invalid_event", "{detail}")
SESSION_EXPIRED = ErrorCode(
    408, "session_expired", "The realtime session reached its maximum length ({seconds:g} s); open a new one."
)
SESSION_IDLE = ErrorCode(408, "session_idle", "The realtime session was idle for {seconds:g} s and was closed.")
CLIENT_TOO_SLOW = ErrorCode(
    408, "client_too_slow", "The client did not read its events for {seconds:g} s and was disconnected."
)
UPSTREAM_CLOSED = ErrorCode(502, "upstream_closed", "The upstream realtime session ended: {detail}")
SESSION_STOPPING = ErrorCode(
    503, "server_shutting_down", "The gateway is stopping; this realtime session was closed. Reconnect to continue."
)
# 500, 502, 503: the gateway's side
INTERNAL_ERROR = ErrorCode(500, "internal_error", "The gateway hit an internal error.")
STRIPE_ERROR = ErrorCode(502, "stripe_error", "Stripe refused the call: {detail}")
UPSTREAM_ERROR = ErrorCode(502, "upstream_error", "{detail}")  # UpstreamError's own (its status varies: 502-504)
SERVER_BUSY = ErrorCode(503, "server_busy", "The gateway is at its connection limit; retry shortly.")
METERING_UNAVAILABLE = ErrorCode(
    503, "metering_unavailable", "Usage could not be recorded; the request was refused (fail closed)."
)
STRIPE_NOT_CONFIGURED = ErrorCode(503, "stripe_not_configured", "Stripe {what} not configured: set {variable}.")
BACKUP_FAILED = ErrorCode(500, "backup_failed", "The backup copy did not verify and was discarded: {detail}")
BACKUP_NO_ROOM = ErrorCode(507, "insufficient_storage", "No room for a backup copy: {detail}", "service_unavailable")
SERVER_STOPPING = ErrorCode(
    503,
    "server_shutting_down",
    "The gateway is stopping and its grace period ran out; this stream was ended early and billed for what"
    " it delivered. Retry the request.",
)

TABLE = {name: value for name, value in globals().items() if isinstance(value, ErrorCode)}
_BY_CODE = {row.code: row for row in reversed(TABLE.values())}  # the first row of each code wins


def from_translation(exc: TranslationError) -> GatewayError:
    """A translator's refusal as the table's error of the same code (a code missing from the table is a bug:
    KeyError, caught by the house test that checks every code the translators use)."""
    return _BY_CODE[exc.code](detail=exc.message, param=exc.param)
