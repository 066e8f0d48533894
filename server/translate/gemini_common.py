"""What both directions of the Gemini <-> OpenAI translation share: field access that accepts Google's
camelCase and snake_case spellings, data-URL and MIME helpers, and JSON Schema <-> Gemini Schema mapping.

Kept apart from the direction modules so each stays small; everything here is pure (no I/O).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from server.translate.errors import TranslationError

JSON = dict[str, Any]

# Extension -> MIME type for remote files (no `mimetypes`: it reads system files and varies by host).
MIME_BY_EXTENSION = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "heic": "image/heic",
    "heif": "image/heif",
    "bmp": "image/bmp",
    "pdf": "application/pdf",
    "wav": "audio/wav",
    "mp3": "audio/mp3",
}
AUDIO_MIME = {"wav": "audio/wav", "mp3": "audio/mp3"}
AUDIO_FORMAT = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/mp3": "mp3", "audio/mpeg": "mp3"}

# The subset of OpenAPI 3.0 Schema that Gemini's `Schema` message accepts (unknown keys are a 400).
_SCHEMA_KEYS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    }
)
_STRING_FORMATS = frozenset({"enum", "date-time"})
_NUMBER_FORMATS = frozenset({"float", "double", "int32", "int64"})

# --------------------------------------------------------------------------------------------- helpers


def snake(camel: str) -> str:
    return re.sub(r"([A-Z])", r"_\1", camel).lower()


def camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def field(obj: Any, camel: str) -> Any:
    """Field `camel` of a Gemini object, also found under its snake_case name (proto JSON accepts both)."""
    if not isinstance(obj, dict):
        return None
    if camel in obj:
        return obj[camel]
    return obj.get(snake(camel))


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def now_seconds() -> int:
    return int(time.time())


def parse_data_url(url: str, param: str) -> tuple[str, str]:
    """(mime type, base64 data) of a `data:<mime>;base64,<data>` URL."""
    header, sep, data = url[5:].partition(",")
    fields = header.split(";")
    if not sep or "base64" not in fields[1:] or not data:
        raise TranslationError("data URLs must be base64 encoded: data:<mime>;base64,<data>", param=param)
    return (fields[0] or "application/octet-stream"), data


def guess_mime(uri: str, default: str = "image/jpeg") -> str:
    path = uri.split("?", 1)[0].split("#", 1)[0]
    last = path.rsplit("/", 1)[-1]
    ext = last.rsplit(".", 1)[-1].lower() if "." in last else ""
    return MIME_BY_EXTENSION.get(ext, default)


def text_of(content: Any) -> str:
    """Text of an OpenAI message content: a string, or its text/refusal parts concatenated."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, dict) and part.get("type") in ("text", "refusal"):
                out.append(str(part.get("text") if part.get("type") == "text" else part.get("refusal") or ""))
        return "".join(out)
    raise TranslationError("message content must be a string or an array of content parts")


def loads_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


# ---------------------------------------------------------------------------------------------- schemas


def gemini_schema(schema: Any, param: str = "schema", *, _defs: JSON | None = None, _depth: int = 0) -> JSON:
    """A JSON Schema rewritten into the OpenAPI subset Gemini's `Schema` accepts: local `$ref`s inlined,
    `type: [t, "null"]` and null branches as `nullable`, `const` as a one-value enum, everything Gemini
    rejects (additionalProperties, $schema, strict, unsupported formats...) dropped, types upper-cased."""
    if not isinstance(schema, dict):
        return {}
    if _depth > 40:
        raise TranslationError("schema nests too deeply or refers to itself", param=param)
    if _defs is None:
        _defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    if "$ref" in schema:
        ref = str(schema["$ref"])
        name = ref.rsplit("/", 1)[-1]
        if not ref.startswith(("#/$defs/", "#/definitions/")) or name not in _defs:
            raise TranslationError(f"schema reference {ref!r} cannot be resolved", param=param)
        merged = {**_defs[name], **{k: v for k, v in schema.items() if k != "$ref"}}
        return gemini_schema(merged, param, _defs=_defs, _depth=_depth + 1)
    out: JSON = {}
    for key, value in schema.items():
        if key == "type":
            kinds = [str(v) for v in as_list(value)]
            if "null" in kinds:
                out["nullable"] = True
            kinds = [k for k in kinds if k != "null"]
            if len(kinds) == 1:
                out["type"] = kinds[0].upper()
            elif kinds:
                out["anyOf"] = [{"type": k.upper()} for k in kinds]
        elif key == "const" and isinstance(value, str):
            out["enum"] = [value]
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {
                name: gemini_schema(sub, f"{param}.properties.{name}", _defs=_defs, _depth=_depth + 1)
                for name, sub in value.items()
            }
        elif key == "items" and isinstance(value, dict):
            out["items"] = gemini_schema(value, f"{param}.items", _defs=_defs, _depth=_depth + 1)
        elif key in ("anyOf", "oneOf") and isinstance(value, list):
            branches = [gemini_schema(v, f"{param}.{key}", _defs=_defs, _depth=_depth + 1) for v in value]
            if any(b == {"nullable": True} for b in branches):
                out["nullable"] = True
            branches = [b for b in branches if b != {"nullable": True}]
            if len(branches) == 1:
                out.update({k: v for k, v in branches[0].items() if k not in out})
            elif branches:
                out["anyOf"] = branches
        elif key == "allOf" and isinstance(value, list) and len(value) == 1:
            single = gemini_schema(value[0], f"{param}.allOf", _defs=_defs, _depth=_depth + 1)
            out.update({k: v for k, v in single.items() if k not in out})
        elif key in _SCHEMA_KEYS:
            out[key] = value
    kind, fmt = out.get("type"), out.get("format")
    if fmt is not None and not (
        (kind == "STRING" and fmt in _STRING_FORMATS) or (kind in ("NUMBER", "INTEGER") and fmt in _NUMBER_FORMATS)
    ):
        del out["format"]
    if "enum" in out and not all(isinstance(e, str) for e in out["enum"]):
        del out["enum"]  # Gemini enums are strings only
    return out


def json_schema_from_gemini(schema: Any) -> JSON:
    """A Gemini `Schema` (upper- or lower-case types, camel- or snake_case keys) as plain JSON Schema."""
    if not isinstance(schema, dict):
        return {}
    out: JSON = {}
    nullable = False
    for raw_key, value in schema.items():
        key = camel(raw_key) if "_" in raw_key else raw_key
        if key == "type":
            kind = str(value).lower()
            if kind not in ("type_unspecified", ""):
                out["type"] = kind
        elif key == "nullable":
            nullable = bool(value)
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {name: json_schema_from_gemini(sub) for name, sub in value.items()}
        elif key == "items":
            out["items"] = json_schema_from_gemini(value)
        elif key == "anyOf" and isinstance(value, list):
            out["anyOf"] = [json_schema_from_gemini(v) for v in value]
        elif key in ("propertyOrdering", "example"):
            continue
        elif key == "ref":
            out["$ref"] = value
        elif key == "defs" and isinstance(value, dict):
            out["$defs"] = {name: json_schema_from_gemini(sub) for name, sub in value.items()}
        else:
            out[key] = value
    if nullable:
        if "type" in out:
            out["type"] = [out["type"], "null"]
        elif "anyOf" in out:
            out["anyOf"].append({"type": "null"})
    return out
