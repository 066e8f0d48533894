"""Request shapes checked at the edge: every field the gateway (or a translator) reads has the right type,
so bad input is a 400 naming the field, never a 500. Fields not listed pass through untouched (the
upstream judges them); the numbers the gateway interprets itself (output caps, `n`) are checked by the
dialects. Each check names the field as `messages.0.content`-style paths."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from server.errors import INVALID_ENCODING_FORMAT, INVALID_INPUT, INVALID_REQUEST, INVALID_TYPE, MISSING_FIELD

Check = Callable[[Any, str], None]


def _fail(param: str, what: str) -> None:
    raise INVALID_TYPE(field=param, what=what)


def string(value: Any, param: str) -> None:
    if not isinstance(value, str):
        _fail(param, "a string")


def boolean(value: Any, param: str) -> None:
    if not isinstance(value, bool):
        _fail(param, "a boolean")


def integer(value: Any, param: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2**53:
        _fail(param, "an integer")


def number(value: Any, param: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or abs(value) > 1e6:
        _fail(param, "a number")


def obj(value: Any, param: str) -> None:
    if not isinstance(value, dict):
        _fail(param, "an object")


def one_of(*checks: Check, what: str) -> Check:
    def check(value: Any, param: str) -> None:
        for candidate in checks:
            try:
                candidate(value, param)
                return
            except Exception:
                continue
        _fail(param, what)

    return check


def array(item: Check | None = None, *, non_empty: bool = False) -> Check:
    def check(value: Any, param: str) -> None:
        if not isinstance(value, list) or (non_empty and not value):
            _fail(param, "a non-empty array" if non_empty else "an array")
        if item is not None:
            for index, element in enumerate(value):
                item(element, f"{param}.{index}")

    return check


def fields(spec: dict[str, Check], required: tuple[str, ...] = ()) -> Check:
    """An object whose listed fields (when present and not null) pass their checks."""

    def check(value: Any, param: str) -> None:
        obj(value, param)
        for name in required:
            if value.get(name) is None:
                raise MISSING_FIELD(field=_join(param, name))
        for name, field_check in spec.items():
            found = value.get(name)
            if found is not None:
                field_check(found, _join(param, name))

    return check


def _join(param: str, name: str) -> str:
    return f"{param}.{name}" if param else name


STRINGS = array(string)
STRING_OR_STRINGS = one_of(string, STRINGS, what="a string or an array of strings")

_CHAT_PART = fields({"type": string, "text": string, "image_url": one_of(string, obj, what="a string or an object")})
_CHAT_CONTENT = one_of(string, array(_CHAT_PART), what="a string or an array of content parts")
_CHAT_TOOL_CALL = fields({"id": string, "type": string, "function": fields({"name": string, "arguments": string})})
_CHAT_MESSAGE = fields(
    {"role": string, "content": _CHAT_CONTENT, "name": string, "tool_calls": array(_CHAT_TOOL_CALL)},
    required=("role",),
)
_FUNCTION = fields({"name": string, "description": string, "parameters": obj}, ("name",))


def _chat_tool(value: Any, param: str) -> None:
    """A chat tool; a function tool (the default type) must carry its function."""
    fields({"type": string, "function": _FUNCTION})(value, param)
    if value.get("type", "function") == "function" and value.get("function") is None:
        raise MISSING_FIELD(field=f"{param}.function")


_CHAT_TOOL = _chat_tool
_CHAT = fields(
    {
        "messages": array(_CHAT_MESSAGE, non_empty=True),
        "tools": array(_CHAT_TOOL),
        "tool_choice": one_of(
            string, fields({"type": string, "function": fields({"name": string})}), what="a string or an object"
        ),
        "response_format": fields({"type": string, "json_schema": obj}),
        "stream_options": fields({"include_usage": boolean}),
        "temperature": number,
        "top_p": number,
        "presence_penalty": number,
        "frequency_penalty": number,
        "stop": STRING_OR_STRINGS,
        "seed": integer,
        "logprobs": boolean,
        "top_logprobs": integer,
        "user": string,
        "metadata": obj,
        "logit_bias": obj,
        "parallel_tool_calls": boolean,
        "modalities": STRINGS,
        "audio": obj,
        "prediction": obj,
        "store": boolean,
        "reasoning_effort": string,
        "service_tier": string,
    },
    required=("messages",),
)


def check_chat(body: dict[str, Any]) -> None:
    _CHAT(body, "")


def _embedding_input(value: Any, param: str) -> None:
    def tokens(v: Any) -> bool:
        return isinstance(v, list) and bool(v) and all(type(t) is int and 0 <= t < 2**32 for t in v)

    if isinstance(value, str) and value:
        return
    if tokens(value):
        return
    if (
        isinstance(value, list)
        and value
        and (all(isinstance(v, str) and v for v in value) or all(tokens(v) for v in value))
    ):
        return
    raise INVALID_INPUT(
        field=param, what="a non-empty string, array of strings, array of tokens or array of token arrays"
    )


def check_embeddings(body: dict[str, Any]) -> None:
    fields({"input": _embedding_input, "user": string, "dimensions": integer}, required=("input",))(body, "")
    if body.get("encoding_format", "float") not in ("float", "base64"):
        raise INVALID_ENCODING_FORMAT(param="encoding_format")


_RESPONSES_ITEM = fields(
    {
        "type": string,
        "role": string,
        "content": one_of(string, array(obj), what="a string or an array of content parts"),
        "call_id": string,
        "name": string,
        "arguments": string,
    }
)
_RESPONSES = fields(
    {
        "input": one_of(string, array(_RESPONSES_ITEM, non_empty=True), what="a non-empty string or array of items"),
        "instructions": string,
        "tools": array(fields({"type": string, "name": string, "parameters": obj})),
        "tool_choice": one_of(string, obj, what="a string or an object"),
        "text": fields({"format": obj, "verbosity": string}),
        "reasoning": obj,
        "temperature": number,
        "top_p": number,
        "metadata": obj,
        "store": boolean,
        "previous_response_id": string,
        "include": STRINGS,
        "parallel_tool_calls": boolean,
        "truncation": string,
        "user": string,
        "background": boolean,
    },
    required=("input",),
)


def check_responses(body: dict[str, Any]) -> None:
    if body.get("input") in ("", []):
        raise INVALID_INPUT(field="input", what="a non-empty string or array of items")
    _RESPONSES(body, "")


_ANTHROPIC_BLOCK = fields(
    {"type": string, "text": string, "source": obj, "id": string, "name": string, "tool_use_id": string}
)
_MESSAGES = fields(
    {
        "messages": array(
            fields(
                {
                    "role": string,
                    "content": one_of(string, array(_ANTHROPIC_BLOCK), what="a string or an array of blocks"),
                },
                required=("role",),
            ),
            non_empty=True,
        ),
        "system": one_of(string, array(_ANTHROPIC_BLOCK), what="a string or an array of blocks"),
        "tools": array(fields({"type": string, "name": string, "description": string, "input_schema": obj})),
        "tool_choice": fields({"type": string, "name": string, "disable_parallel_tool_use": boolean}),
        "stop_sequences": STRINGS,
        "temperature": number,
        "top_p": number,
        "top_k": integer,
        "metadata": obj,
        "thinking": obj,
    },
    required=("messages",),
)


def check_messages(body: dict[str, Any]) -> None:
    if not isinstance(body.get("max_tokens"), int) or isinstance(body.get("max_tokens"), bool):
        raise INVALID_REQUEST(detail="max_tokens: Field required", param="max_tokens")
    _MESSAGES(body, "")


_GEMINI_PART = fields(
    {"text": string, "inlineData": obj, "inline_data": obj, "functionCall": obj, "functionResponse": obj}
)
_GEMINI_CONTENT = fields({"role": string, "parts": array(_GEMINI_PART)})
_GEMINI = fields(
    {
        "contents": array(_GEMINI_CONTENT, non_empty=True),
        "systemInstruction": one_of(string, _GEMINI_CONTENT, what="a string or a content object"),
        "system_instruction": one_of(string, _GEMINI_CONTENT, what="a string or a content object"),
        "tools": array(obj),
        "toolConfig": obj,
        "tool_config": obj,
        "generationConfig": fields({"temperature": number, "topP": number, "topK": number, "stopSequences": STRINGS}),
        "generation_config": fields(
            {"temperature": number, "top_p": number, "top_k": number, "stop_sequences": STRINGS}
        ),
        "safetySettings": array(obj),
    },
)


def check_gemini(body: dict[str, Any]) -> None:
    if not isinstance(body.get("contents"), list) or not body["contents"]:
        raise INVALID_REQUEST(detail="contents must not be empty", param="contents")
    _GEMINI(body, "")


_IMAGES = fields(
    {
        "prompt": string,
        "size": string,
        "quality": string,
        "response_format": string,
        "style": string,
        "user": string,
        "n": integer,
    },
    required=("prompt",),
)


def check_images(body: dict[str, Any]) -> None:
    _IMAGES(body, "")


_SPEECH = fields({"input": string, "response_format": string, "instructions": string, "speed": number}, ("input",))


def check_speech(body: dict[str, Any]) -> None:
    _SPEECH(body, "")


_JOB = fields({"prompt": string, "size": string, "seconds": one_of(integer, string, what="seconds")}, ("prompt",))


def check_job(body: dict[str, Any]) -> None:
    _JOB(body, "")
