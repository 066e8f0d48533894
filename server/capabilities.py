"""What a model can serve (capabilities) and the endpoint class each belongs to for key scopes and plan limits."""

from __future__ import annotations

# Served operations, then features of chat (tools, vision, json) that a model may declare.
CAPABILITIES = (
    "chat",
    "embeddings",
    "images",
    "speech",
    "transcription",
    "video",
    "music",
    "realtime",
    "tools",
    "vision",
    "json",
)
FEATURES = ("tools", "vision", "json")

# A key's `endpoints` scope and a plan's `rpm` are per endpoint class.
# `webhooks` is the key-facing management of webhook endpoints (/v1/webhooks/endpoints), not a model call.
ENDPOINT_CLASSES = ("chat", "embeddings", "images", "audio", "files", "video", "realtime", "webhooks")
_CLASS_OF = {
    "chat": "chat",
    "embeddings": "embeddings",
    "images": "images",
    "speech": "audio",
    "transcription": "audio",
    "video": "video",
    "music": "video",
    "realtime": "realtime",
    "files": "files",
    "webhooks": "webhooks",
}


def endpoint_class(capability: str) -> str:
    """The limit and scope class of a capability (speech and transcription are both `audio`)."""
    return _CLASS_OF[capability]
