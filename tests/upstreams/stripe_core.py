"""The core of the Stripe stand-in: its errors, object store, form decoding and parameter checks.

Stripe refuses unknown or missing parameters, non-integer amounts and oversized metadata; these helpers
refuse them the same way, with Stripe-shaped errors, so a mistake in the gateway fails a test here.
"""

from __future__ import annotations

import re
import secrets
import string
from typing import Any

from tests.upstreams.asgi_kit import FieldError
from tests.upstreams.asgi_kit import State as _KitState

DEFAULT_BEHAVIOR: dict[str, Any] = {"status": None, "delay_ms": 0, "times": None}


def param_names(text: str) -> frozenset[str]:
    return frozenset(text.split())


RETRIEVE_PARAMS = frozenset({"expand"})


class ApiError(FieldError):
    """Raised by handlers to answer with a Stripe-shaped error body."""

    def __init__(self, status: int, message: str, **fields: Any) -> None:  # param, code and type_ by keyword only
        super().__init__(status, message, **fields)

    def body(self) -> dict[str, Any]:
        """Stripe omits absent fields rather than sending nulls."""
        error: dict[str, Any] = {"message": self.message, "type": self.type}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        return {"error": error}


def missing(param: str) -> ApiError:
    return ApiError(400, f"Missing required param: {param}.", param=param, code="parameter_missing")


def no_such(kind: str, object_id: str, param: str) -> ApiError:
    return ApiError(404, f"No such {kind}: '{object_id}'", param=param, code="resource_missing")


class State(_KitState):
    """Process-wide objects, recordings and behaviour; one event loop, so no locking is needed."""

    defaults = DEFAULT_BEHAVIOR

    def __init__(self) -> None:
        super().__init__()
        self.objects: dict[str, dict[str, Any]] = {}
        self.idempotent: dict[tuple[str, str], tuple[str, str, Any, int, dict[str, Any]]] = {}

    def save(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.objects[obj["id"]] = obj
        return obj

    def get(self, kind: str, object_id: str, param: str = "id") -> dict[str, Any]:
        obj = self.objects.get(object_id)
        if obj is None or obj["object"] != kind:
            raise no_such(kind, object_id, param)
        return obj


STATE = State()


# ---------------------------------------------------------------------------------------------
# form decoding and parameter checks

_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's bracket encoding to nested data: ``a[b][0][c]=v`` -> ``{"a": {"b": [{"c": "v"}]}}``."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        match = _KEY.fullmatch(key)
        if not match:
            raise ApiError(400, f"Invalid parameter name: {key}", param=key)
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part or str(len(node)), {})
            if not isinstance(child, dict):
                raise ApiError(400, f"Invalid hash: {key} mixes a value and nested keys", param=key)
            node = child
        last = parts[-1] or str(len(node))
        if isinstance(node.get(last), dict):
            raise ApiError(400, f"Invalid hash: {key} mixes a value and nested keys", param=key)
        node[last] = value
    return _listify(root, "")


def _listify(node: Any, name: str) -> Any:
    """Dicts keyed 0..n become lists, except metadata, whose keys are the caller's."""
    if not isinstance(node, dict):
        return node
    out = {k: _listify(v, k) for k, v in node.items()}
    if name != "metadata" and out and all(k.isdigit() for k in out):
        return [out[k] for k in sorted(out, key=int)]
    return out


def check_known(params: dict[str, Any], allowed: frozenset[str]) -> None:
    for key in params:
        if key not in allowed:
            raise ApiError(400, f"Received unknown parameter: {key}", param=key, code="parameter_unknown")


def as_int(value: Any, param: str, *, minimum: int | None = None) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"-?\d+", value):
        raise ApiError(400, f"Invalid integer: {value}", param=param, code="parameter_invalid_integer")
    number = int(value)
    if minimum is not None and number < minimum:
        raise ApiError(400, f"This value must be greater than or equal to {minimum}.", param=param)
    return number


def as_bool(value: Any, param: str) -> bool:
    if value not in ("true", "false"):
        raise ApiError(400, f"Invalid boolean: {value}", param=param)
    return value == "true"


def as_str(value: Any, param: str, *, max_len: int = 5000) -> str:
    if not isinstance(value, str):
        raise ApiError(400, f"Invalid string: {param} must be a string", param=param)
    if len(value) > max_len:
        raise ApiError(400, f"Invalid string: {param} must be at most {max_len} characters", param=param)
    return value


def as_currency(value: Any, param: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z]{3}", value):
        raise ApiError(400, f"Invalid currency: {value}", param=param, code="parameter_invalid_string")
    return value.lower()


def as_enum(value: Any, param: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ApiError(400, f"Invalid {param}: must be one of {', '.join(choices)}", param=param)
    return str(value)


def as_metadata(value: Any) -> dict[str, str]:
    """Stripe's limits: 50 keys, keys up to 40 characters, values up to 500; empty values unset a key."""
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise ApiError(400, "Invalid object", param="metadata")
    if len(value) > 50:
        raise ApiError(400, "Invalid metadata: metadata can have up to 50 keys", param="metadata")
    out: dict[str, str] = {}
    for key, item in value.items():
        if len(key) > 40:
            raise ApiError(400, f"Metadata keys must be at most 40 characters: {key}", param=f"metadata[{key}]")
        if not isinstance(item, str):
            raise ApiError(400, "Metadata values must be strings", param=f"metadata[{key}]")
        if len(item) > 500:
            raise ApiError(400, "Metadata values can have up to 500 characters", param=f"metadata[{key}]")
        if item:
            out[key] = item
    return out


def as_url(value: Any, param: str) -> str:
    text = as_str(value, param)
    if not re.match(r"https?://[^/\s]+", text):
        raise ApiError(400, "Not a valid URL", param=param, code="url_invalid")
    return text


def random_token(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))
