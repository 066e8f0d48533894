"""What the conformance tier sends: request bodies per provider kind, the extra models it needs, and how
each stand-in is told to break a stream mid-way."""

from __future__ import annotations

from typing import Any

from tests.support.front_doors import model_of

PROMPT = "hello conformance tier"
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
CHAT_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER}}
]
RESPONSES_TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather", "parameters": WEATHER}]

EMBEDDING_KINDS = ("openai", "gemini", "mock")  # Anthropic has no embeddings API
_EMBEDDING_TARGETS = {"openai": "text-embedding-3-small", "gemini": "text-embedding-004", "mock": "mock-embed"}
MEDIA_CONFIG = "\n[jobs]\npoll_interval_s = 0.1\n"  # the mock's jobs end within a second (see front_doors)
EMBEDDINGS_CONFIG = "".join(
    f'\n[[models]]\nname = "embed-via-{kind}"\ntargets = ["{kind}:{target}"]\nprice = {{ input = 0.1 }}\n'
    'capabilities = ["embeddings"]\n'
    for kind, target in _EMBEDDING_TARGETS.items()
)

BREAK_STREAM: dict[str, dict[str, Any]] = {  # each stand-in's behaviour for "drop the connection mid-stream"
    "openai": {"fail_after_chunks": 3},
    "anthropic": {"fail_after_events": 3},
    "gemini": {"fail_after_chunks": 1},
}


def chat_body(kind: str, tools: bool = False, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model_of(kind), "messages": [{"role": "user", "content": PROMPT}], **fields}
    return {**body, "tools": CHAT_TOOLS} if tools else body


def responses_body(kind: str, tools: bool = False, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model_of(kind), "input": PROMPT, **fields}
    return {**body, "tools": RESPONSES_TOOLS} if tools else body


def embeddings_body(kind: str, encoding_format: str) -> dict[str, Any]:
    return {"model": f"embed-via-{kind}", "input": [PROMPT, "a second input"], "encoding_format": encoding_format}
