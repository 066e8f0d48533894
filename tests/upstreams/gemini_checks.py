"""Request validation for the Gemini stand-in: what generativelanguage.googleapis.com refuses, and how it words it.

Unknown fields, empty contents, function-call turn order and schema keys Gemini rejects are all a 400 in
Google's error shape (``GoogleError``), so a translation bug in the gateway fails a test instead of passing.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from tests.upstreams.asgi_kit import StandInError

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

# Field names per message (camelCase; proto JSON also accepts snake_case, and so do we).
_REQUEST = {
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "safetySettings",
    "generationConfig",
    "cachedContent",
    "model",
}
_CONTENT = {"role", "parts"}
_PART_DATA = {  # the oneof "data": exactly one of these per part
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
}
_PART = _PART_DATA | {"thought", "thoughtSignature", "videoMetadata", "mediaResolution"}
_BLOB = {"mimeType", "data", "displayName"}
_FILE_DATA = {"mimeType", "fileUri", "displayName"}
_FUNCTION_CALL = {"id", "name", "args"}
_FUNCTION_RESPONSE = {"id", "name", "response", "parts", "willContinue", "scheduling"}
_TOOL = {"functionDeclarations", "googleSearch", "googleSearchRetrieval", "codeExecution", "urlContext"}
_DECLARATION = {
    "name",
    "description",
    "parameters",
    "parametersJsonSchema",
    "response",
    "responseJsonSchema",
    "behavior",
}
_TOOL_CONFIG = {"functionCallingConfig"}
_CALLING_CONFIG = {"mode", "allowedFunctionNames"}
_GENERATION = {
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "enableEnhancedCivicAnswers",
    "speechConfig",
    "thinkingConfig",
    "mediaResolution",
    "imageConfig",
}
_SCHEMA = {
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
_SCHEMA_TYPES = {"TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}
_SAFETY = {"category", "threshold", "method"}
EMBED_REQUEST = {"model", "content", "taskType", "title", "outputDimensionality"}
TASK_TYPES = {
    "TASK_TYPE_UNSPECIFIED",
    "RETRIEVAL_QUERY",
    "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
}
_MODES = {"MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"}
_FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")


class GoogleError(StandInError):
    """Raised by handlers to answer with Google's error body ``{"error": {"code", "message", "status"}}``."""

    def __init__(self, status: int, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(status, message)
        self.details = details

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.status, "message": self.message}
        err["status"] = _STATUS_NAMES.get(self.status, "UNKNOWN")
        if self.details:
            err["details"] = self.details
        return {"error": err}


def invalid(message: str) -> GoogleError:
    return GoogleError(400, message)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def fields(obj: Any, allowed: set[str], where: str) -> dict[str, Any]:
    """``obj`` with keys in camelCase, or a 400 naming the first field the API would not know."""
    if not isinstance(obj, dict):
        raise invalid(f"Invalid JSON payload received. Expected an object at '{where}'.")
    out = {}
    for key, value in obj.items():
        camel = _camel(key)
        if camel not in allowed:
            raise invalid(f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': Cannot find field.")
        out[camel] = value
    return out


def as_list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(f"Invalid JSON payload received. Expected a list at '{where}'.")
    return value


# --------------------------------------------------------------------------------------------- validation


def _check_schema(schema: Any, where: str) -> None:
    spec = fields(schema, _SCHEMA, where)
    kind = spec.get("type")
    if kind is not None and str(kind).upper() not in _SCHEMA_TYPES:
        raise invalid(
            f"Invalid value at '{where}.type' "
            f'(type.googleapis.com/google.ai.generativelanguage.v1beta.Type), "{kind}"'
        )
    properties = spec.get("properties")
    if str(kind).upper() == "OBJECT" and not properties:
        raise invalid(f"* GenerateContentRequest.{where}.properties: should be non-empty for OBJECT type")
    for name, sub in (properties or {}).items():
        _check_schema(sub, f"{where}.properties[{name}]")
    if spec.get("items") is not None:
        _check_schema(spec["items"], f"{where}.items")
    for i, sub in enumerate(as_list(spec.get("anyOf"), f"{where}.any_of")):
        _check_schema(sub, f"{where}.any_of[{i}]")
    if spec.get("enum") is not None and not all(isinstance(e, str) for e in spec["enum"]):
        raise invalid(f"Invalid value at '{where}.enum': enum values must be strings")


def _check_part(raw: Any, where: str, role: str) -> dict[str, Any]:
    part = fields(raw, _PART, where)
    data = [k for k in part if k in _PART_DATA]
    if len(data) != 1:
        raise invalid(
            f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one initialized field"
        )
    if "text" in part and not isinstance(part["text"], str):
        raise invalid(f"Invalid value at '{where}.text' (TYPE_STRING)")
    if "inlineData" in part:
        blob = fields(part["inlineData"], _BLOB, f"{where}.inline_data")
        if not blob.get("mimeType") or not blob.get("data"):
            raise invalid(f"* GenerateContentRequest.{where}.inline_data: mime_type and data are required")
        try:
            base64.b64decode(str(blob["data"]), validate=True)
        except binascii.Error:
            raise invalid(f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), Base64 decoding failed") from None
    if "fileData" in part:
        file_data = fields(part["fileData"], _FILE_DATA, f"{where}.file_data")
        if not file_data.get("fileUri"):
            raise invalid(f"* GenerateContentRequest.{where}.file_data.file_uri: file_uri is required")
    if "functionCall" in part:
        call = fields(part["functionCall"], _FUNCTION_CALL, f"{where}.function_call")
        if role != "model":
            raise invalid("Please ensure that function call parts are only in model turns.")
        if not call.get("name") or not isinstance(call.get("args", {}), dict):
            raise invalid(
                f"* GenerateContentRequest.{where}.function_call: name is required and args must be an object"
            )
    if "functionResponse" in part:
        response = fields(part["functionResponse"], _FUNCTION_RESPONSE, f"{where}.function_response")
        if not response.get("name"):
            raise invalid(f"* GenerateContentRequest.{where}.function_response.name: Name cannot be empty.")
        if not isinstance(response.get("response"), dict):
            raise invalid(
                f"Invalid value at '{where}.function_response.response' (type.googleapis.com/google.protobuf.Struct)"
            )
    return part


def check_content(raw: Any, where: str, *, system: bool = False) -> dict[str, Any]:
    content = fields(raw, _CONTENT, where)
    role = content.get("role") or "user"
    if not system and role not in ("user", "model"):
        raise invalid("Please use a valid role: user, model.")
    parts = as_list(content.get("parts"), f"{where}.parts")
    if not parts:
        raise invalid(f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty.")
    content["parts"] = [_check_part(p, f"{where}.parts[{i}]", role) for i, p in enumerate(parts)]
    content["role"] = role
    return content


def _check_turns(contents: list[dict[str, Any]]) -> None:
    """The real API's function-calling turn rules: responses come right after the calls, one per call."""
    for i, content in enumerate(contents):
        responses = [p for p in content["parts"] if "functionResponse" in p]
        if not responses:
            continue
        previous = contents[i - 1] if i else None
        calls = [p for p in previous["parts"] if "functionCall" in p] if previous else []
        if not calls:
            raise invalid("Please ensure that function response turn comes immediately after a function call turn.")
        if len(calls) != len(responses):
            raise invalid(
                "Please ensure that the number of function response parts is equal to the number of "
                "function call parts of the function call turn."
            )


def check_generate_request(body: Any) -> dict[str, Any]:
    """Validate a generateContent body as Google does; returns it with camelCase keys where we read them."""
    request = fields(body, _REQUEST, "GenerateContentRequest")
    raw_contents = as_list(request.get("contents"), "contents")
    if not raw_contents:
        raise invalid("* GenerateContentRequest.contents: contents is not specified")
    contents = [check_content(c, f"contents[{i}]") for i, c in enumerate(raw_contents)]
    _check_turns(contents)
    request["contents"] = contents
    if request.get("systemInstruction") is not None:
        system = check_content(request["systemInstruction"], "system_instruction", system=True)
        if any("text" not in p for p in system["parts"]):
            raise invalid("* GenerateContentRequest.system_instruction: only text parts are allowed")
        request["systemInstruction"] = system
    names: list[str] = []
    tools = []
    for i, raw_tool in enumerate(as_list(request.get("tools"), "tools")):
        tool = fields(raw_tool, _TOOL, f"tools[{i}]")
        declarations = []
        for j, raw_decl in enumerate(as_list(tool.get("functionDeclarations"), f"tools[{i}].function_declarations")):
            where = f"tools[{i}].function_declarations[{j}]"
            decl = fields(raw_decl, _DECLARATION, where)
            if not _FUNCTION_NAME.match(str(decl.get("name") or "")):
                raise invalid(
                    f"* GenerateContentRequest.{where}.name: Invalid function name. Must start with a letter or an "
                    "underscore. Must be a-z, A-Z, 0-9, or contain underscores, dots, colons and dashes, with a "
                    "maximum length of 64."
                )
            if decl.get("parameters") is not None:
                _check_schema(decl["parameters"], f"{where}.parameters")
            names.append(decl["name"])
            declarations.append(decl)
        tool["functionDeclarations"] = declarations
        tools.append(tool)
    request["tools"] = tools
    config = fields(request.get("toolConfig") or {}, _TOOL_CONFIG, "tool_config")
    calling = fields(config.get("functionCallingConfig") or {}, _CALLING_CONFIG, "tool_config.function_calling_config")
    mode = str(calling.get("mode") or "AUTO").upper()
    if mode not in _MODES:
        raise invalid(f"Invalid value at 'tool_config.function_calling_config.mode', \"{calling.get('mode')}\"")
    allowed = as_list(calling.get("allowedFunctionNames"), "tool_config.function_calling_config.allowed_function_names")
    if allowed and mode not in ("ANY", "VALIDATED"):
        raise invalid(
            "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: "
            "allowed_function_names should only be set when the Mode is ANY."
        )
    if any(name not in names for name in allowed):
        raise invalid(
            "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: "
            "must be names of declared functions."
        )
    request["toolConfig"] = {"functionCallingConfig": {"mode": mode, "allowedFunctionNames": allowed}}
    for i, setting in enumerate(as_list(request.get("safetySettings"), "safety_settings")):
        fields(setting, _SAFETY, f"safety_settings[{i}]")
    generation = fields(request.get("generationConfig") or {}, _GENERATION, "generation_config")
    if generation.get("responseSchema") is not None:
        if generation.get("responseMimeType") not in ("application/json", "text/x.enum"):
            raise invalid(
                "* GenerateContentRequest.generation_config.response_mime_type: must be application/json or "
                "text/x.enum when response_schema is set."
            )
        _check_schema(generation["responseSchema"], "generation_config.response_schema")
    if len(as_list(generation.get("stopSequences"), "generation_config.stop_sequences")) > 5:
        raise invalid("* GenerateContentRequest.generation_config.stop_sequences: at most 5 stop sequences are allowed")
    count = generation.get("candidateCount", 1)
    if not isinstance(count, int) or not 1 <= count <= 8:
        raise invalid("* GenerateContentRequest.generation_config.candidate_count: must be between 1 and 8")
    request["generationConfig"] = generation
    return request
