"""The `mock` kind's realtime peer: a deterministic upstream session in process, no network.

It speaks the GA event names: `session.created` at once; `session.update` -> `session.updated`;
conversation items and input audio are remembered; `response.create` answers with `response.created`, then
per word of "Mock reply: <the last user text>" a `response.output_text.delta` (text modality) or a
`response.output_audio_transcript.delta` and a `response.output_audio.delta` carrying 100 ms of a 440 Hz
tone (PCM16, 24 kHz; audio modality, the default), then `response.done` with its usage. Counts: input
tokens = 1 + ~4 characters of conversation text per token + 10 per second of input audio; output tokens =
one per word of text, 2 per 100 ms of audio; the response's `max_output_tokens` stops it early
(`incomplete`). `response.cancel` ends the active response as `cancelled`, billed for what it produced.
A second response while one runs, or an unknown event, gets an `error` event naming the client's event_id.

Bounded: at most OUTBOX events wait for the reader; past that the peer waits, like a real socket.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import struct
from typing import Any

import orjson

from server.metering import AUDIO_INPUT_TOKENS_PER_S, audio_tokens, tokens_in
from server.providers.realtime import UpstreamClosed

OUTBOX = 16
RATE = 24_000
CHUNK_MS = 100
TOKENS_PER_CHUNK = CHUNK_MS * 20 // 1000
_TONE = base64.b64encode(
    struct.pack(
        f"<{RATE * CHUNK_MS // 1000}h",
        *(int(8000 * math.sin(2 * math.pi * 440 * n / RATE)) for n in range(RATE * CHUNK_MS // 1000)),
    )
).decode()


def tone_chunk() -> str:
    """The base64 PCM16 audio of one delta (what a test compares byte for byte)."""
    return _TONE


def _text_of(item: Any) -> str:
    if not isinstance(item, dict):
        return ""
    parts = item.get("content") if isinstance(item.get("content"), list) else []
    return " ".join(str(p.get("text", "")) for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))


class MockRealtimePeer:
    def __init__(self, model: str) -> None:
        self._model = model
        self._outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(OUTBOX)
        self._closed = False
        self._events = 0
        self._responses = 0
        self._session: dict[str, Any] = {
            "type": "realtime",
            "object": "realtime.session",
            "id": "sess_mock",
            "model": model,
            "output_modalities": ["audio"],
            "instructions": "",
            "max_output_tokens": "inf",
            "audio": {
                "input": {"format": {"type": "audio/pcm", "rate": RATE}},
                "output": {"format": {"type": "audio/pcm", "rate": RATE}, "voice": "alloy"},
            },
        }
        self._texts: list[str] = []
        self._audio_bytes = 0
        self._active: asyncio.Task[None] | None = None
        self._outbox.put_nowait(self._event("session.created", session=dict(self._session)))

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        self._events += 1
        return {"type": kind, "event_id": f"event_mock_{self._events}", **fields}

    async def _put(self, kind: str, **fields: Any) -> None:
        await self._outbox.put(self._event(kind, **fields))

    # the RealtimeUpstream protocol

    async def send(self, text: str) -> None:
        if self._closed:
            raise UpstreamClosed(1000, "closed")
        event = orjson.loads(text)
        kind, client_id = event.get("type"), event.get("event_id")
        if kind == "session.update":
            self._session.update({k: v for k, v in (event.get("session") or {}).items() if k != "type"})
            await self._put("session.updated", session=dict(self._session))
        elif kind == "conversation.item.create":
            item = event.get("item") or {}
            self._texts.append(_text_of(item))
            await self._put("conversation.item.added", item=item)
            await self._put("conversation.item.done", item=item)
        elif kind == "input_audio_buffer.append":
            self._audio_bytes += len(base64.b64decode(event.get("audio") or ""))
        elif kind == "input_audio_buffer.commit":
            await self._put("input_audio_buffer.committed", item_id=f"item_audio_{self._events}")
        elif kind == "input_audio_buffer.clear":
            await self._put("input_audio_buffer.cleared")
        elif kind == "response.create":
            if self._active is not None and not self._active.done():
                await self._error("conversation_already_has_active_response", "A response is in progress.", client_id)
                return
            self._active = asyncio.get_running_loop().create_task(self._respond(event.get("response") or {}))
        elif kind == "response.cancel":
            if self._active is not None and not self._active.done():
                self._active.cancel()
        else:
            await self._error("invalid_event", f"Unknown event type {kind!r}.", client_id)

    async def recv(self) -> str:
        event = None if self._closed else await self._outbox.get()
        if event is None:
            raise UpstreamClosed(1000, "closed")
        return orjson.dumps(event).decode()

    async def close(self) -> None:
        self._closed = True
        if self._active is not None:
            self._active.cancel()
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait(None)

    # answers

    async def _error(self, code: str, message: str, client_id: Any) -> None:
        error = {"type": "invalid_request_error", "code": code, "message": message, "param": None}
        await self._put("error", error={**error, "event_id": client_id})

    async def _respond(self, options: dict[str, Any]) -> None:
        self._responses += 1
        response_id = f"resp_mock_{self._responses}"
        modalities = options.get("output_modalities") or self._session.get("output_modalities") or ["audio"]
        cap = options.get("max_output_tokens", self._session.get("max_output_tokens"))
        cap = cap if isinstance(cap, int) else 4096
        audio = "audio" in modalities
        user = next((text for text in reversed(self._texts) if text), "")
        words = f"Mock reply: {user}".strip().split(" ")
        input_tokens = 1 + tokens_in(sum(len(t) for t in self._texts))
        input_audio = audio_tokens(self._audio_bytes * 1000 // (RATE * 2), AUDIO_INPUT_TOKENS_PER_S)
        produced = {"text": 0, "audio": 0}
        status = "completed"
        base = {"object": "realtime.response", "id": response_id, "output_modalities": modalities}
        await self._put("response.created", response={**base, "status": "in_progress", "output": []})
        try:
            for index, word in enumerate(words):
                piece = word if index == len(words) - 1 else word + " "
                cost = TOKENS_PER_CHUNK if audio else 1
                if produced["text"] + produced["audio"] + cost > cap:
                    status = "incomplete"
                    break
                ids = {"response_id": response_id, "item_id": f"item_{response_id}", "output_index": 0}
                if audio:
                    await self._put("response.output_audio_transcript.delta", **ids, content_index=0, delta=piece)
                    await self._put("response.output_audio.delta", **ids, content_index=0, delta=_TONE)
                    produced["audio"] += TOKENS_PER_CHUNK
                else:
                    await self._put("response.output_text.delta", **ids, content_index=0, delta=piece)
                    produced["text"] += 1
        except asyncio.CancelledError:
            status = "cancelled"
        usage = {
            "total_tokens": input_tokens + input_audio + produced["text"] + produced["audio"],
            "input_tokens": input_tokens + input_audio,
            "output_tokens": produced["text"] + produced["audio"],
            "input_token_details": {
                "cached_tokens": 0,
                "text_tokens": input_tokens,
                "audio_tokens": input_audio,
                "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0},
            },
            "output_token_details": {"text_tokens": produced["text"], "audio_tokens": produced["audio"]},
        }
        done = {**base, "status": status, "status_details": None, "output": [], "usage": usage}
        if status == "incomplete":
            done["status_details"] = {"type": "incomplete", "reason": "max_output_tokens"}
        with contextlib.suppress(asyncio.CancelledError):
            if not self._closed:
                await self._put("response.done", response=done)
