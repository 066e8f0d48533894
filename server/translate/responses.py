"""OpenAI Responses API ↔ Chat Completions, as pure dict→dict functions.

Why: `POST /v1/responses` must work through providers that only speak chat (Anthropic, Gemini, mock,
chat-only OpenAI-compatible servers): the request becomes a chat request, and the chat result (or its
stream, chunk by chunk, never buffered) becomes a Responses object (or Responses events). Providers
that speak Responses get the body passed through; the usage helpers at the bottom meter those.

Failure behaviour: what chat cannot express raises `TranslationError` (400, precise `code` and
`param`) before any provider is called. Only state chat has no slot for is dropped (`reasoning`
items, `store`, `include`, `truncation`); conversation state (`previous_response_id`) is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from server.translate.errors import TranslationError

JSON = dict[str, Any]
Event = tuple[str, JSON]

_STATELESS = ("previous_response_id", "conversation", "prompt")
_OPENING = ("response.created", "response.in_progress")
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
_TEXT_PARTS = ("input_text", "output_text", "text")
_FUNCTION_KEYS = ("description", "parameters", "strict")
_SAME_NAME = ("temperature", "top_p", "user", "metadata", "safety_identifier", "prompt_cache_key")
_ECHOED = ("instructions", "max_output_tokens", "max_tool_calls", "prompt_cache_key", "safety_identifier", "user")


def responses_to_chat(body: JSON) -> JSON:
    """Translate a Responses request body into a Chat Completions request body."""
    if not isinstance(body, dict):
        raise TranslationError("The request body must be a JSON object.")
    for name in _STATELESS:
        if body.get(name) is not None:
            message = f"`{name}` is not supported: the gateway keeps no conversation state; send it all in `input`."
            raise _refuse(message, name, "unsupported_parameter")
    if body.get("background"):
        raise _refuse("`background` responses are not supported.", "background", "unsupported_parameter")

    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise TranslationError("`instructions` must be a string.", param="instructions")
    messages: list[JSON] = [{"role": "system", "content": instructions}] if instructions else []
    messages.extend(_input_messages(body.get("input")))
    if not messages:
        raise TranslationError("`input` is required.", param="input")

    tools = _tools(body.get("tools") or [])
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        tools, choice = _allowed_tools(tools, choice)
    elif choice is not None:
        choice = _tool_choice(choice, "tool_choice")
    text = _object(body, "text")
    optional = {
        "response_format": _response_format(text.get("format")),
        "verbosity": text.get("verbosity"),
        "max_completion_tokens": body.get("max_output_tokens"),
        "reasoning_effort": _object(body, "reasoning").get("effort"),
        **{name: body.get(name) for name in _SAME_NAME},
    }
    if tools:  # chat refuses tool_choice / parallel_tool_calls without tools, where Responses accepts them
        optional.update(tools=tools, tool_choice=choice, parallel_tool_calls=body.get("parallel_tool_calls"))
    chat: JSON = {"model": body.get("model"), "messages": messages}
    chat.update((key, value) for key, value in optional.items() if value is not None)
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def _input_messages(value: Any) -> list[JSON]:
    """`input` as a string is one user turn; as a list, each item maps to (part of) a chat message."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise TranslationError("`input` must be a string or a list of input items.", param="input")
    messages: list[JSON] = []
    for index, item in enumerate(value):
        param = f"input[{index}]"
        if not isinstance(item, dict):
            raise TranslationError("Each input item must be an object.", param=param)
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            messages.append(_message(item, param))
        elif kind == "function_call":
            _append_tool_call(messages, item, param)
        elif kind == "function_call_output":
            call_id = _required_str(item, "call_id", param)
            content = _tool_output(item.get("output"), param)
            messages.append({"role": "tool", "tool_call_id": call_id, "content": content})
        elif kind == "reasoning":
            continue  # chat has no slot for a prior turn's reasoning; the visible turns carry the conversation
        elif kind == "item_reference":
            raise _refuse("Item references need stored responses; none are kept.", param, "unsupported_parameter")
        else:
            raise _refuse(f"Input items of type `{kind}` cannot be sent to this model.", param, "unsupported_content")
    return messages


def _message(item: JSON, param: str) -> JSON:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise TranslationError(f"Unknown message role `{role}`.", param=f"{param}.role")
    # Chat-only servers rarely know `developer`; `system` is what it means to them.
    chat_role = "system" if role == "developer" else role
    content = item.get("content")
    if isinstance(content, str):
        return {"role": chat_role, "content": content}
    if not isinstance(content, list):
        raise TranslationError("Message content must be a string or a list of parts.", param=f"{param}.content")
    parts: list[JSON] = []
    refusal = ""
    for index, part in enumerate(content):
        part_param = f"{param}.content[{index}]"
        if isinstance(part, dict) and part.get("type") == "refusal" and role == "assistant":
            refusal += str(part.get("refusal") or "")
            continue
        converted = _content_part(part, part_param)
        if converted["type"] != "text" and chat_role != "user":
            raise TranslationError(f"Only user messages may carry images, not `{role}`.", param=part_param)
        parts.append(converted)
    single_text = len(parts) == 1 and parts[0]["type"] == "text"
    message: JSON = {
        "role": chat_role,
        "content": parts[0]["text"] if single_text else parts or (None if refusal else ""),
    }
    return {**message, "refusal": refusal} if refusal else message


def _content_part(part: Any, param: str) -> JSON:
    if not isinstance(part, dict):
        raise TranslationError("Each content part must be an object.", param=param)
    kind = part.get("type")
    if kind in _TEXT_PARTS:
        return {"type": "text", "text": str(part.get("text") or "")}
    if kind == "input_image":
        url = part.get("image_url")
        if not url:
            if part.get("file_id"):
                message = "Images given by `file_id` are not supported for this model yet; send `image_url`."
                raise _refuse(message, f"{param}.file_id", "unsupported_content")
            raise TranslationError("`input_image` needs an `image_url`.", param=param)
        return {"type": "image_url", "image_url": {"url": url, **_present(part, ("detail",))}}
    if kind == "input_file" and isinstance(part.get("file_data"), str):  # a file id the gateway resolved
        spec = {"file_data": part["file_data"], **_present(part, ("filename",))}
        return {"type": "file", "file": spec}
    raise _refuse(f"Content parts of type `{kind}` are not supported for this model.", param, "unsupported_content")


def _append_tool_call(messages: list[JSON], item: JSON, param: str) -> None:
    """Consecutive function calls (and the assistant text before them) form one chat assistant turn."""
    arguments = item.get("arguments")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments if arguments is not None else {})
    call = {
        "id": _required_str(item, "call_id", param),
        "type": "function",
        "function": {"name": _required_str(item, "name", param), "arguments": arguments},
    }
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
        if last.get("content") == "":
            last["content"] = None
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _tool_output(output: Any, param: str) -> str:
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        parts = [_content_part(part, f"{param}.output[{index}]") for index, part in enumerate(output)]
        if any(part["type"] != "text" for part in parts):
            raise _refuse("Tool outputs may only carry text for this model.", f"{param}.output", "unsupported_content")
        return "".join(part["text"] for part in parts)
    raise TranslationError("`output` must be a string or a list of parts.", param=f"{param}.output")


def _object(body: JSON, key: str) -> JSON:
    value = body.get(key) or {}
    if not isinstance(value, dict):
        raise TranslationError(f"`{key}` must be an object.", param=key)
    return value


def _present(source: JSON, keys: tuple[str, ...]) -> JSON:
    return {key: source[key] for key in keys if source.get(key) is not None}


def _refuse(message: str, param: str | None, code: str = "invalid_request") -> TranslationError:
    return TranslationError(message, code=code, param=param)


def _required_str(item: JSON, key: str, param: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise TranslationError(f"`{key}` is required.", param=f"{param}.{key}")
    return value


def _tools(tools: Any) -> list[JSON]:
    """Responses function tools are flat; chat nests name/description/parameters under `function`."""
    if not isinstance(tools, list):
        raise TranslationError("`tools` must be a list.", param="tools")
    converted: list[JSON] = []
    for index, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            message = f"The built-in tool `{kind}` is not available for this model; only function tools are."
            raise _refuse(message, f"tools[{index}]", "unsupported_tool")
        function = {"name": _required_str(tool, "name", f"tools[{index}]"), **_present(tool, _FUNCTION_KEYS)}
        converted.append({"type": "function", "function": function})
    return converted


def _tool_choice(choice: Any, param: str) -> Any:
    if choice in ("none", "auto", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": _required_str(choice, "name", param)}}
    kind = choice.get("type") if isinstance(choice, dict) else choice
    raise _refuse(f"`tool_choice` `{kind}` is not available for this model.", param, "unsupported_tool")


def _allowed_tools(tools: list[JSON], choice: JSON) -> tuple[list[JSON], str]:
    """Restrict the tool list instead of sending `allowed_tools`, which few chat providers understand."""
    names = set()
    for index, allowed in enumerate(choice.get("tools") or []):
        _tool_choice(allowed, f"tool_choice.tools[{index}]")  # raises for anything but a function
        names.add(allowed["name"])
    mode = choice.get("mode", "auto")
    if mode not in ("auto", "required"):
        raise TranslationError("`tool_choice.mode` must be `auto` or `required`.", param="tool_choice.mode")
    return [tool for tool in tools if tool["function"]["name"] in names], mode


def _response_format(fmt: Any) -> JSON | None:
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if fmt is None or kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        name = _required_str(fmt, "name", "text.format")
        schema = {"name": name, "schema": fmt.get("schema") or {}, **_present(fmt, ("strict", "description"))}
        return {"type": "json_schema", "json_schema": schema}
    raise TranslationError(f"Unknown `text.format` type `{kind}`.", param="text.format")


def chat_to_response(
    chat: JSON, request: JSON, response_id: str, created_at: int, *, completed_at: int | None = None
) -> JSON:
    """Translate a `chat.completion` into the Responses `response` object answering `request`."""
    choice = (chat.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    reason = _INCOMPLETE.get(choice.get("finish_reason") or "")
    status = "incomplete" if reason else "completed"
    output: list[JSON] = []
    parts: list[JSON] = []
    text = _chat_text(message.get("content"))
    if text:
        parts.append(_output_text(text))
    if message.get("refusal"):
        parts.append({"type": "refusal", "refusal": message["refusal"]})
    tool_calls = [call for call in message.get("tool_calls") or [] if call.get("type", "function") == "function"]
    if parts or not tool_calls:
        parts = parts or [_output_text("")]
        output.append(_message_item(_item_id("msg", response_id, 0), parts, status))
    for call in tool_calls:
        function, index = call.get("function") or {}, len(output)
        call_id = call.get("id") or _item_id("call", response_id, index)
        name, arguments = function.get("name") or "", function.get("arguments") or ""
        output.append(_call_item(_item_id("fc", response_id, index), call_id, name, arguments, status))
    model = chat.get("model") or request.get("model") or ""
    outcome = dict(id=response_id, created_at=created_at, model=model, output=output)
    finished = _finished(status, reason, created_at if completed_at is None else completed_at)
    return _response_object(request, {**outcome, **finished, "usage": _usage_from_chat(chat.get("usage"))})


def _chat_text(content: Any) -> str:
    if isinstance(content, list):  # some servers answer with text parts
        return "".join(str(part.get("text") or "") for part in content if isinstance(part, dict))
    return content or ""


def _output_text(text: str) -> JSON:
    """An `output_text` part; `annotations` and `logprobs` are required even when empty."""
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _item_id(prefix: str, response_id: str, index: int) -> str:
    """Item ids derive from the response id, so the functions stay pure and ids stay unique."""
    return f"{prefix}_{response_id.removeprefix('resp_')}_{index}"


def _message_item(item_id: str, parts: list[JSON], status: str) -> JSON:
    return {"id": item_id, "type": "message", "role": "assistant", "status": status, "content": parts}


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> JSON:
    return dict(id=item_id, type="function_call", call_id=call_id, name=name, arguments=arguments, status=status)


def _usage_from_chat(usage: Any) -> JSON | None:
    if not isinstance(usage, dict):
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": int(prompt_details.get("cached_tokens") or 0),
            "cache_write_tokens": int(prompt_details.get("cache_write_tokens") or 0),
        },
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": int(completion_details.get("reasoning_tokens") or 0)},
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }


def _finished(status: str, reason: str | None, completed_at: int) -> JSON:
    """The fields that say how a response ended."""
    details = {"reason": reason} if reason else None
    return dict(status=status, incomplete_details=details, completed_at=completed_at if status == "completed" else None)


def _response_object(request: JSON, outcome: JSON) -> JSON:
    """The full `response` object: the request's settings echoed the way the real API does, then `outcome`."""
    text = request.get("text") or {}
    return {
        "object": "response",
        "status": "in_progress",
        "background": False,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "output": [],
        "usage": None,
        **{key: request.get(key) for key in _ECHOED},
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": {"effort": (request.get("reasoning") or {}).get("effort"), "summary": None},
        "store": False,  # nothing is stored, whatever the request asked
        "temperature": request.get("temperature", 1.0),
        "text": {"format": text.get("format") or {"type": "text"}, "verbosity": text.get("verbosity") or "medium"},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": [_echo_tool(tool) for tool in request.get("tools") or [] if isinstance(tool, dict)],
        "top_logprobs": request.get("top_logprobs") or 0,
        "top_p": request.get("top_p", 1.0),
        "truncation": request.get("truncation") or "disabled",
        "metadata": request.get("metadata") or {},
        **outcome,
    }


def _echo_tool(tool: JSON) -> JSON:
    return {key: tool.get(key) for key in ("type", "name", "description", "parameters", "strict")}


@dataclass
class _Item:
    """One output item as it grows: a message (text/refusal parts) or a function call."""

    kind: str
    item_id: str = ""
    output_index: int = -1  # -1: a tool call still waiting for its name before it can be announced
    parts: list[JSON] = field(default_factory=list)
    call_id: str = ""
    name: str = ""
    arguments: str = ""
    status: str = "in_progress"

    def render(self, arguments: str | None = None) -> JSON:
        if self.kind == "message":
            return _message_item(self.item_id, [dict(part) for part in self.parts], self.status)
        args = self.arguments if arguments is None else arguments
        return _call_item(self.item_id, self.call_id, self.name, args, self.status)


class ChatStreamToResponses:
    """Turns `chat.completion.chunk`s into Responses streaming events, one chunk at a time.

    Why a small object: the Responses stream needs state chat chunks do not carry (which item is
    open, each item's accumulated text, the sequence number). Call `feed` per chunk, then exactly one
    of `finish` (the upstream ended) or `fail` (it broke); later calls return nothing. Each event is
    `(event_type, data)`, with `data["type"] == event_type`, ready to be written as SSE.
    """

    def __init__(self, request: JSON, response_id: str, created_at: int) -> None:
        self._request = request
        self._response_id = response_id
        self._created_at = created_at
        self._model: str = request.get("model") or ""
        self._sequence = 0
        self._started = False
        self._closed = False
        self._items: list[_Item] = []
        self._message: _Item | None = None
        self._calls: dict[int, _Item] = {}
        self._finish_reason: str | None = None
        self._usage: JSON | None = None

    def start(self) -> list[Event]:
        """`response.created` and `response.in_progress`; sent by the first `feed` if not called earlier."""
        if self._started:
            return []
        self._started = True
        return [self._event(name, response=self._snapshot("in_progress")) for name in _OPENING]

    def feed(self, chunk: JSON) -> list[Event]:
        """Translate one chat chunk (choice 0 only; `n > 1` has no Responses equivalent)."""
        if self._closed:
            return []
        events = self.start()
        if chunk.get("model"):
            self._model = chunk["model"]
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                events += self._text_delta("output_text", delta["content"])
            if delta.get("refusal"):
                events += self._text_delta("refusal", delta["refusal"])
            for call in delta.get("tool_calls") or []:
                events += self._tool_delta(call)
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
        return events

    def finish(self, completed_at: int | None = None) -> list[Event]:
        """Close every open item and end with `response.completed` (or `response.incomplete`)."""
        if self._closed:
            return []
        events = self.start()
        for call in self._calls.values():
            if call.output_index < 0:
                events += self._open_call(call)
        reason = _INCOMPLETE.get(self._finish_reason or "")
        final = "incomplete" if reason else "completed"
        events += self._close_message(final)
        for item in self._items:
            if item.kind == "function_call" and item.status == "in_progress":
                item.status = final
                args_done = dict(name=item.name, arguments=item.arguments)
                events.append(self._event("response.function_call_arguments.done", **self._where(item), **args_done))
                events.append(self._item_done(item))
        self._closed = True
        response = self._snapshot(final, reason, done=completed_at or 0)
        events.append(self._event(f"response.{final}", response=response))
        return events

    def fail(self, message: str) -> list[Event]:
        """End a broken stream: an `error` event, then `response.failed` with what was generated."""
        if self._closed:
            return []
        events = self.start()
        self._closed = True
        for item in self._items:
            if item.status == "in_progress":
                item.status = "incomplete"
        events.append(self._event("error", code="server_error", message=message, param=None))
        error = {"code": "server_error", "message": message}
        events.append(self._event("response.failed", response=self._snapshot("failed", error=error)))
        return events

    def _text_delta(self, kind: str, delta: str) -> list[Event]:
        events: list[Event] = []
        item = self._message
        if item is None:
            index = len(self._items)
            item = self._message = _Item("message", _item_id("msg", self._response_id, index), index)
            self._items.append(item)
            events.append(self._event("response.output_item.added", output_index=index, item=item.render()))
        key = "text" if kind == "output_text" else "refusal"
        if not item.parts or item.parts[-1]["type"] != kind:
            if item.parts:
                events += self._close_part(item)
            part = _output_text("") if kind == "output_text" else {"type": kind, key: ""}
            item.parts.append(part)
            events.append(self._event("response.content_part.added", **self._where(item, True), part=dict(part)))
        item.parts[-1][key] += delta
        extra = {"logprobs": []} if kind == "output_text" else {}
        events.append(self._event(f"response.{kind}.delta", **self._where(item, True), delta=delta, **extra))
        return events

    def _close_part(self, item: _Item) -> list[Event]:
        part = item.parts[-1]
        if part["type"] == "output_text":
            done = self._event("response.output_text.done", **self._where(item, True), text=part["text"], logprobs=[])
        else:
            done = self._event("response.refusal.done", **self._where(item, True), refusal=part["refusal"])
        return [done, self._event("response.content_part.done", **self._where(item, True), part=dict(part))]

    def _close_message(self, status: str = "completed") -> list[Event]:
        item = self._message
        if item is None:
            return []
        self._message = None
        item.status = status
        events = self._close_part(item) if item.parts else []
        events.append(self._item_done(item))
        return events

    def _tool_delta(self, call: JSON) -> list[Event]:
        index = call.get("index", 0)
        item = self._calls.setdefault(index, _Item("function_call"))
        function = call.get("function") or {}
        arguments = function.get("arguments") or ""
        if item.output_index >= 0:  # announced: the call id and name are fixed now
            item.arguments += arguments
            if not arguments:
                return []
            return [self._event("response.function_call_arguments.delta", **self._where(item), delta=arguments)]
        if call.get("id"):
            item.call_id = call["id"]
        if function.get("name"):
            item.name += function["name"]
        item.arguments += arguments
        return self._open_call(item) if item.name else []

    def _open_call(self, item: _Item) -> list[Event]:
        """Announce a function call once its name is known; text before it is a finished message."""
        events = self._close_message()
        item.output_index = len(self._items)
        item.item_id = _item_id("fc", self._response_id, item.output_index)
        item.call_id = item.call_id or _item_id("call", self._response_id, item.output_index)
        self._items.append(item)
        events.append(self._event("response.output_item.added", output_index=item.output_index, item=item.render("")))
        if item.arguments:
            delta = item.arguments
            events.append(self._event("response.function_call_arguments.delta", **self._where(item), delta=delta))
        return events

    def _item_done(self, item: _Item) -> Event:
        return self._event("response.output_item.done", output_index=item.output_index, item=item.render())

    @staticmethod
    def _where(item: _Item, content: bool = False) -> JSON:
        where: JSON = {"item_id": item.item_id, "output_index": item.output_index}
        if content:
            where["content_index"] = len(item.parts) - 1
        return where

    def _event(self, event_type: str, **data: Any) -> Event:
        event = (event_type, {"type": event_type, "sequence_number": self._sequence, **data})
        self._sequence += 1
        return event

    def _snapshot(self, status: str, reason: str | None = None, error: JSON | None = None, done: int = 0) -> JSON:
        """The response object as it stands; `done` is when it ended (0: use `created_at`)."""
        outcome = dict(id=self._response_id, created_at=self._created_at, model=self._model, status=status)
        if status != "in_progress":
            outcome["output"] = [item.render() for item in self._items]
            outcome["usage"] = _usage_from_chat(self._usage)
            outcome.update(_finished(status, reason, done or self._created_at))
            outcome["error"] = error
        return _response_object(self._request, outcome)


def response_to_chat_usage(usage: JSON) -> JSON:
    """Responses usage → chat usage, so `/v1/responses` passed straight through meters like chat."""
    usage = usage if isinstance(usage, dict) else {}
    prompt = int(usage.get("input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0)
    input_details = usage.get("input_tokens_details") or {}
    output_details = usage.get("output_tokens_details") or {}
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
        "prompt_tokens_details": {"cached_tokens": int(input_details.get("cached_tokens") or 0)},
        "completion_tokens_details": {"reasoning_tokens": int(output_details.get("reasoning_tokens") or 0)},
    }


def responses_stream_usage(event: JSON) -> JSON | None:
    """Chat-shaped usage from a terminal Responses stream event (completed, incomplete or failed), else None."""
    if event.get("type") not in ("response.completed", "response.incomplete", "response.failed"):
        return None
    usage = (event.get("response") or {}).get("usage")
    return response_to_chat_usage(usage) if isinstance(usage, dict) else None
