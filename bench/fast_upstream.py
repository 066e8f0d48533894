"""A minimal, fast OpenAI-compatible upstream for benchmarks.

Raw asyncio (``asyncio.Protocol``, uvloop when importable), HTTP/1.1 with keep-alive and
pipelining; the request line, headers and body (Content-Length or chunked) are parsed by hand.

* ``POST /v1/chat/completions`` answers a fixed ``chat.completion`` (usage 12 + 8 = 20 tokens),
  or, when the body asks for ``"stream": true``, an SSE stream (chunked transfer encoding): a role
  chunk, five content chunks, a finish chunk, a usage chunk with ``choices: []`` (only when
  ``stream_options.include_usage``), then ``data: [DONE]``.
* ``GET /v1/models`` lists one model; anything else is a 404 in OpenAI's error shape.

Run: ``python bench/fast_upstream.py --port 9100 [--host 127.0.0.1] [--chunk-delay-ms 0]``.
It serves until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from typing import Any, cast

try:
    import orjson

    def _loads(data: bytes) -> Any:
        return orjson.loads(data)

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)
except ImportError:  # pragma: no cover - orjson is in the venv

    def _loads(data: bytes) -> Any:
        return json.loads(data)

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()


CREATED = int(time.time())
USAGE = {
    "prompt_tokens": 12,
    "completion_tokens": 8,
    "total_tokens": 20,
    "prompt_tokens_details": {"cached_tokens": 0},
}
WORDS = ["Hello", " from", " the", " fast", " upstream"]
MAX_HEAD = 64 * 1024
CHUNK_DELAY_S = 0.0


def completion(model: str) -> bytes:
    return _dumps(
        {
            "id": "chatcmpl-bench0001",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_bench",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(WORDS), "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    )


def stream_events(model: str, include_usage: bool) -> list[bytes]:
    """The SSE events (``data: ...\\n\\n``) of one streamed completion."""

    def chunk(choices: list[dict[str, Any]], usage: Any = None) -> bytes:
        obj: dict[str, Any] = {
            "id": "chatcmpl-bench0001",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_bench",
            "choices": choices,
        }
        if include_usage:
            obj["usage"] = usage
        return b"data: " + _dumps(obj) + b"\n\n"

    def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    events = [chunk([choice({"role": "assistant", "content": "", "refusal": None})])]
    events += [chunk([choice({"content": w})]) for w in WORDS]
    events.append(chunk([choice({}, "stop")]))
    if include_usage:
        events.append(chunk([], USAGE))
    events.append(b"data: [DONE]\n\n")
    return events


def _chunked(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


_cache: dict[tuple[str, bool, bool], bytes | list[bytes]] = {}


def _response(status: bytes, ctype: bytes, body: bytes, close: bool = False) -> bytes:
    head = b"HTTP/1.1 %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n" % (status, ctype, len(body))
    return head + (b"connection: close\r\n\r\n" if close else b"\r\n") + body


def _error(status: bytes, message: str, close: bool = False) -> bytes:
    body = _dumps({"error": {"message": message, "type": "invalid_request_error", "code": None}})
    return _response(status, b"application/json", body, close)


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n"
)


def _stream_head(close: bool) -> bytes:
    return STREAM_HEAD + (b"connection: close\r\n\r\n" if close else b"\r\n")


class UpstreamProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False  # a paced stream is being written

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.transport is not None and not self.busy:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    self._finish(_error(b"431 Request Header Fields Too Large", "too large", True), True)
                return
            lines = bytes(self.buf[:end]).split(b"\r\n")
            try:
                method, target, version = lines[0].split(b" ", 2)
            except ValueError:
                self._finish(_error(b"400 Bad Request", "bad request line", True), True)
                return
            length, chunked, close = 0, False, version == b"HTTP/1.0"
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value) if value.strip().isdigit() else -1
                elif name == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif name == b"connection":
                    close = value.strip().lower() == b"close"
            if length < 0:
                self._finish(_error(b"400 Bad Request", "bad content-length", True), True)
                return
            if chunked:
                parsed = _dechunk(self.buf, end + 4)
                if parsed is None:
                    return
                body, consumed = parsed
            else:
                consumed = end + 4 + length
                if len(self.buf) < consumed:
                    return
                body = bytes(self.buf[end + 4 : consumed])
            del self.buf[:consumed]
            self.handle(method, target.split(b"?", 1)[0], body, close)

    def handle(self, method: bytes, path: bytes, body: bytes, close: bool) -> None:
        if path == b"/v1/chat/completions" and method == b"POST":
            try:
                req = _loads(body) if body else {}
                model = str(req.get("model") or "bench-model")
                stream = req.get("stream") is True
                opts = req.get("stream_options") or {}
                usage = stream and isinstance(opts, dict) and opts.get("include_usage") is True
            except (ValueError, AttributeError):
                self._finish(_error(b"400 Bad Request", "body is not a JSON object", close), close)
                return
            key = (model, stream, usage)
            cached = _cache.get(key)
            if cached is None:
                cached = stream_events(model, usage) if stream else completion(model)
                _cache[key] = cached
            if isinstance(cached, bytes):
                self._finish(_response(b"200 OK", b"application/json", cached, close), close)
            else:
                self._stream(cached, close)
        elif path == b"/v1/models" and method == b"GET":
            model_obj = {"id": "bench-model", "object": "model", "created": CREATED, "owned_by": "bench"}
            body = _dumps({"object": "list", "data": [model_obj]})
            self._finish(_response(b"200 OK", b"application/json", body, close), close)
        else:
            self._finish(_error(b"404 Not Found", "unknown route", close), close)

    def _finish(self, data: bytes, close: bool) -> None:
        if self.transport is None:
            return
        self.transport.write(data)
        if close:
            self.transport.close()
            self.transport = None

    def _stream(self, events: list[bytes], close: bool) -> None:
        if CHUNK_DELAY_S <= 0 or self.transport is None:
            self._finish(_stream_head(close) + b"".join(_chunked(e) for e in events) + b"0\r\n\r\n", close)
            return
        # Paced stream: later pipelined requests on this connection queue behind it.
        self.busy = True
        self.transport.pause_reading()
        transport = self.transport
        loop = asyncio.get_running_loop()
        transport.write(_stream_head(close) + _chunked(events[0]))
        for i, event in enumerate(events[1:], start=1):
            loop.call_later(CHUNK_DELAY_S * i, _write_if_open, transport, _chunked(event))
        loop.call_later(CHUNK_DELAY_S * len(events), self._stream_done, transport, close)

    def _stream_done(self, transport: asyncio.Transport, close: bool) -> None:
        _write_if_open(transport, b"0\r\n\r\n")
        self.busy = False
        if close:
            transport.close()
            self.transport = None
        elif not transport.is_closing():
            transport.resume_reading()
            self.data_received(b"")


def _write_if_open(transport: asyncio.Transport, data: bytes) -> None:
    if not transport.is_closing():
        transport.write(data)


def _dechunk(buf: bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at ``start``; None when incomplete."""
    out = bytearray()
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
        pos = eol + 2
        if size == 0:
            while True:  # trailers, ending with an empty line
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                if eol == pos:
                    return bytes(out), pos + 2
                pos = eol + 2
        if len(buf) < pos + size + 2:
            return None
        out += buf[pos : pos + size]
        pos += size + 2


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, host, port, backlog=1024, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"fast_upstream listening on http://{host}:{port}/v1", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    global CHUNK_DELAY_S
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="pause between SSE events")
    args = parser.parse_args()
    CHUNK_DELAY_S = args.chunk_delay_ms / 1000
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.host, args.port))
    else:
        uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
