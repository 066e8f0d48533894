"""What each provider kind serves, as data the config check can read without loading the providers.

`CAPABILITIES` are what a public model routed to the kind may serve (see server.capabilities);
`DIALECTS` are the front doors whose format the kind speaks natively (bodies pass through untouched);
every kind serves the OpenAI chat shape, which the other front doors translate through.
"""

from __future__ import annotations

_CHAT = frozenset({"chat", "tools", "vision", "json"})
_MEDIA = frozenset({"images", "speech", "transcription", "video"})  # OpenAI's own media APIs

CAPABILITIES: dict[str, frozenset[str]] = {
    "openai": _CHAT | _MEDIA | {"embeddings", "realtime"},
    "anthropic": _CHAT,  # vision only: no image, audio or video generation, no audio input
    "gemini": _CHAT | {"embeddings"},  # vision only (remote images are fetched and sent inline)
    "mock": _CHAT | _MEDIA | {"embeddings", "music", "realtime"},
}

DIALECTS: dict[str, frozenset[str]] = {
    "openai": frozenset({"chat", "embeddings", "responses"}),
    "anthropic": frozenset({"chat", "messages"}),
    "gemini": frozenset({"chat", "embeddings", "gemini"}),
    "mock": frozenset({"chat", "embeddings"}),
}
