"""A stand-in for OpenAI's realtime WebSocket (`wss://api.openai.com/v1/realtime?model=...`), GA event names.

Each connection gets `session.created`, then answers what the client sends: `session.update` ->
`session.updated`; `conversation.item.create` -> `conversation.item.added` / `done` (its text remembered);
`input_audio_buffer.append` (counted) and `commit`; `response.create` -> `response.created`, per word of
"upstream reply to: <last user text>" a text delta (text modality) or a transcript delta (audio), then
`audio_chunks` audio deltas whose bytes are `expected_audio(response, index, chunk_bytes)` (so a test can
check them byte for byte), then `response.done` with its usage; `response.cancel` ends the running
response as `cancelled`. An error event names the client's event_id.

It records every connection (path, query, headers: what the gateway sent, its key included) and every
event type received (`GET /_received`), and how many audio deltas each response got out before its
connection closed (`sent`). Behaviour (`POST /_behavior`): `reject_status` (refuse the upgrade with this
HTTP status), `audio_chunks`, `chunk_bytes`, `chunk_delay_ms`, `drop_after_deltas` (close the connection
mid-response), `omit_usage`, `auto_response` (a committed audio buffer starts a response on its own, as
server VAD does).

Run: ``python -m tests.upstreams.openai_realtime --host 127.0.0.1 --port 8124``
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
from typing import Any

from tests.upstreams.asgi_kit import Receive, Send, State, control_route, header_dict, parse_json, read_text, send_json
from tests.upstreams.asgi_kit import main as _serve

MODULE = "tests.upstreams.openai_realtime"
DEFAULTS: dict[str, Any] = {
    "status": None,
    "delay_ms": 0,
    "times": None,
    "reject_status": None,
    "audio_chunks": 2,
    "chunk_bytes": 4800,
    "chunk_delay_ms": 0,
    "drop_after_deltas": None,
    "omit_usage": False,
    "auto_response": False,
}


class RealtimeState(State):
    defaults = DEFAULTS

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[int] = []  # audio deltas sent per response, in order


STATE = RealtimeState()


def expected_audio(response: int, index: int, size: int) -> str:
    """The base64 audio of delta `index` of the connection's response number `response` (1-based)."""
    seed = hashlib.sha256(f"{response}:{index}".encode()).digest()
    return base64.b64encode((seed * (size // len(seed) + 1))[:size]).decode()


def expected_text(user_text: str) -> str:
    return f"upstream reply to: {user_text}"


def _usage(input_chars: int, audio_in_bytes: int, words: int, chunks: int) -> dict[str, Any]:
    text_in, audio_in = 1 + input_chars // 4, audio_in_bytes // 4800
    return {
        "total_tokens": text_in + audio_in + words + 2 * chunks,
        "input_tokens": text_in + audio_in,
        "output_tokens": words + 2 * chunks,
        "input_token_details": {
            "cached_tokens": 0,
            "text_tokens": text_in,
            "audio_tokens": audio_in,
            "image_tokens": 0,
            "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": words, "audio_tokens": 2 * chunks},
    }


class Connection:
    def __init__(self, send: Send, record: dict[str, Any], behavior: dict[str, Any]) -> None:
        self.send_raw, self.record, self.behavior = send, record, behavior
        self.events = 0
        self.responses = 0
        self.modalities = ["audio"]
        self.texts: list[str] = []
        self.audio_in = 0
        self.task: asyncio.Task[None] | None = None

    async def emit(self, kind: str, **fields: Any) -> None:
        self.events += 1
        await self.send_raw(
            {"type": "websocket.send", "text": json.dumps({"type": kind, "event_id": f"ev_{self.events}", **fields})}
        )

    async def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "session.update":
            session = event.get("session") or {}
            self.modalities = session.get("output_modalities") or self.modalities
            await self.emit("session.updated", session={"type": "realtime", "output_modalities": self.modalities})
        elif kind == "conversation.item.create":
            item = event.get("item") or {}
            parts = item.get("content") or []
            self.texts.append(" ".join(p.get("text", "") for p in parts if isinstance(p, dict)))
            await self.emit("conversation.item.added", item=item)
            await self.emit("conversation.item.done", item=item)
        elif kind == "input_audio_buffer.append":
            self.audio_in += len(base64.b64decode(event.get("audio") or ""))
        elif kind == "input_audio_buffer.commit":
            await self.emit("input_audio_buffer.committed", item_id=f"item_in_{self.events}")
            if self.behavior["auto_response"]:  # server VAD: a response nobody asked for with response.create
                self.task = asyncio.get_running_loop().create_task(self.respond({}))
        elif kind == "response.create":
            if self.task is not None and not self.task.done():
                error = {"type": "invalid_request_error", "code": "conversation_already_has_active_response"}
                await self.emit(
                    "error", error={**error, "message": "busy", "param": None, "event_id": event.get("event_id")}
                )
                return
            self.task = asyncio.get_running_loop().create_task(self.respond(event.get("response") or {}))
        elif kind == "response.cancel" and self.task is not None:
            self.task.cancel()

    async def respond(self, options: dict[str, Any]) -> None:
        self.responses += 1
        number, behavior = self.responses, self.behavior
        modalities = options.get("output_modalities") or self.modalities
        words = expected_text(next((t for t in reversed(self.texts) if t), "")).split(" ")
        ids = {
            "response_id": f"resp_up_{number}",
            "item_id": f"item_up_{number}",
            "output_index": 0,
            "content_index": 0,
        }
        status, sent_words, sent_chunks, deltas = "completed", 0, 0, 0
        STATE.sent.append(0)
        await self.emit(
            "response.created",
            response={"object": "realtime.response", "id": ids["response_id"], "status": "in_progress"},
        )
        try:
            kind = "response.output_text.delta" if "text" in modalities else "response.output_audio_transcript.delta"
            for index, word in enumerate(words):
                await self.emit(kind, **ids, delta=word if index == len(words) - 1 else word + " ")
                sent_words, deltas = sent_words + 1, deltas + 1
            if "audio" in modalities:
                for index in range(behavior["audio_chunks"]):
                    if behavior["drop_after_deltas"] is not None and deltas >= behavior["drop_after_deltas"]:
                        await self.send_raw({"type": "websocket.close", "code": 1011, "reason": "dropped"})
                        return
                    if behavior["chunk_delay_ms"]:
                        await asyncio.sleep(behavior["chunk_delay_ms"] / 1000)
                    await self.emit(
                        "response.output_audio.delta",
                        **ids,
                        delta=expected_audio(number, index, behavior["chunk_bytes"]),
                    )
                    sent_chunks, deltas = sent_chunks + 1, deltas + 1
                    STATE.sent[-1] = sent_chunks
        except asyncio.CancelledError:
            status = "cancelled"
        usage = (
            None
            if behavior["omit_usage"]
            else _usage(sum(map(len, self.texts)), self.audio_in, sent_words, sent_chunks)
        )
        response = {
            "object": "realtime.response",
            "id": ids["response_id"],
            "status": status,
            "output": [],
            "usage": usage,
        }
        with contextlib.suppress(Exception):
            await self.emit("response.done", response=response)


async def _websocket(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await receive()  # websocket.connect
    behavior = STATE.take_behavior()
    record = {
        "path": scope["path"],
        "query": scope["query_string"].decode(),
        "headers": header_dict(scope),
        "events": [],
    }
    STATE.received.append(record)
    if behavior["reject_status"]:
        body = json.dumps(
            {"error": {"message": "refused", "type": "invalid_request_error", "code": None, "param": None}}
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send(
            {"type": "websocket.http.response.start", "status": int(behavior["reject_status"]), "headers": headers}
        )
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "websocket.accept"})
    connection = Connection(send, record, behavior)
    await connection.emit(
        "session.created", session={"type": "realtime", "object": "realtime.session", "output_modalities": ["audio"]}
    )
    try:
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            event, _ = parse_json(message.get("text") or "")
            if not isinstance(event, dict):
                continue
            record["events"].append(event.get("type"))
            with contextlib.suppress(Exception):
                await connection.handle(event)
    finally:
        if connection.task is not None:
            connection.task.cancel()


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await _websocket(scope, receive, send)
        return
    if scope["type"] != "http":
        return
    body, _ = parse_json(await read_text(receive))

    async def reply(status: int, payload: Any) -> None:
        await send_json(send, status, payload)

    if (scope["method"], scope["path"]) == ("GET", "/_sent"):
        await reply(200, STATE.sent)
        return
    if scope["path"] == "/_reset":
        STATE.sent.clear()
    if not await control_route(STATE, scope["method"], scope["path"], body, reply, ValueError):
        await reply(404, {"error": {"message": "not found"}})


if __name__ == "__main__":
    _serve(app, __doc__)
