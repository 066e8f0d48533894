"""The OpenAI stand-in's media routes, in OpenAI's wire formats (multipart included), deterministic:

- ``POST /v1/images/generations`` (JSON) and ``/v1/images/edits`` (multipart): n tiny PNGs as ``b64_json``
  (or, asked for ``url``, links to ``/_media/{name}`` on this stand-in);
- ``POST /v1/audio/speech``: labelled bytes in the format asked (content type per format), streamed in
  four chunks;
- ``POST /v1/audio/transcriptions`` and ``/translations`` (multipart): the answer in the format asked,
  the text naming the file's size and hash, the duration ``size / 16000`` seconds;
- ``POST /v1/videos`` (multipart, ``Idempotency-Key`` honoured: the same key answers the same video and
  starts nothing new), ``GET /v1/videos/{id}`` (queued for ``video_queued_ms``, then in progress for
  ``video_run_ms``, then completed, or failed with ``video_fail``), ``GET /v1/videos/{id}/content``.

Every request is recorded (a multipart body as its fields and its files' names, sizes and sha256), so
tests assert what the gateway sent.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
import uuid
import zlib
from typing import Any

from tests.upstreams.asgi_kit import FieldError, Request, Send, send_json

SPEECH_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
BEHAVIOR = {"video_queued_ms": 0, "video_run_ms": 0, "video_fail": False}
VIDEOS: dict[str, dict[str, Any]] = {}
IDEMPOTENT: dict[str, str] = {}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def tiny_png(seed: str) -> bytes:
    """A real 2x2 RGB PNG whose colour comes from `seed`."""
    r, g, b = hashlib.sha256(seed.encode()).digest()[:3]
    rows = (b"\x00" + bytes([r, g, b]) * 2) * 2
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")


def speech_bytes(fmt: str, text: str) -> bytes:
    return (
        f"STAND-IN {fmt.upper()} AUDIO for {len(text)} characters: ".encode()
        + hashlib.sha256(text.encode()).digest() * 64
    )


def _field(request: Request, name: str) -> str | None:
    values = (request.form or {}).get("fields", {}).get(name)
    return values[-1] if values else None


def _need_model(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise FieldError(400, "you must provide a model parameter", param="model")
    return value


async def images_generations(request: Request, behavior: dict[str, Any], send: Send, headers: Any) -> None:
    body = request.body if isinstance(request.body, dict) else {}
    _need_model(body.get("model"))
    if not isinstance(body.get("prompt"), str):
        raise FieldError(400, "'prompt' is required", param="prompt")
    await _image_answer(send, headers, body.get("prompt"), int(body.get("n") or 1), body.get("response_format"))


async def images_edits(request: Request, behavior: dict[str, Any], send: Send, headers: Any) -> None:
    if request.form is None:
        raise FieldError(400, "images/edits takes multipart/form-data")
    _need_model(_field(request, "model"))
    if not [f for f in request.form["files"] if f["field"] in ("image", "image[]")]:
        raise FieldError(400, "'image' is required", param="image")
    n = int(_field(request, "n") or 1)
    await _image_answer(send, headers, _field(request, "prompt"), n, _field(request, "response_format"))


async def _image_answer(send: Send, headers: Any, prompt: Any, n: int, fmt: Any) -> None:
    data = []
    for index in range(n):
        png = tiny_png(f"{prompt}|{index}")
        if fmt == "url":
            data.append({"url": f"/_media/{hashlib.sha256(png).hexdigest()}.png", "revised_prompt": prompt})
        else:
            data.append({"b64_json": base64.b64encode(png).decode(), "revised_prompt": prompt})
    await send_json(send, 200, {"created": int(time.time()), "data": data}, headers)


async def speech(request: Request, behavior: dict[str, Any], send: Send, headers: Any) -> None:
    body = request.body if isinstance(request.body, dict) else {}
    _need_model(body.get("model"))
    text, fmt = body.get("input"), body.get("response_format") or "mp3"
    if not isinstance(text, str) or fmt not in SPEECH_TYPES:
        raise FieldError(400, "'input' and a known 'response_format' are required", param="input")
    data = speech_bytes(fmt, text)
    start = [(b"content-type", SPEECH_TYPES[fmt].encode()), (b"transfer-encoding", b"chunked"), *headers]
    await send({"type": "http.response.start", "status": 200, "headers": start})
    step = len(data) // 4 + 1
    for offset in range(0, len(data), step):
        await send({"type": "http.response.body", "body": data[offset : offset + step], "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def transcript_text(size: int, sha256: str, task: str) -> str:
    return f"stand-in {task[:-1]} of {size} bytes ({sha256[:12]})"


async def transcribe(request: Request, behavior: dict[str, Any], send: Send, headers: Any) -> None:
    if request.form is None:
        raise FieldError(400, "audio routes take multipart/form-data")
    _need_model(_field(request, "model"))
    files = [f for f in request.form["files"] if f["field"] == "file"]
    if not files:
        raise FieldError(400, "'file' is required", param="file")
    task = request.path.rsplit("/", 1)[-1]
    audio = files[0]
    text = transcript_text(audio["size"], audio["sha256"], task)
    duration = round(audio["size"] / 16000, 2)
    fmt = _field(request, "response_format") or "json"
    if fmt in ("text", "srt", "vtt"):
        rendered = {
            "text": text + "\n",
            "srt": f"1\n00:00:00,000 --> 00:00:01,000\n{text}\n",
            "vtt": f"WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n{text}\n",
        }[fmt]
        data = rendered.encode()
        kind = b"text/plain; charset=utf-8"
        start = [(b"content-type", kind), (b"content-length", str(len(data)).encode()), *headers]
        await send({"type": "http.response.start", "status": 200, "headers": start})
        await send({"type": "http.response.body", "body": data})
        return
    answer: dict[str, Any] = {"text": text, "usage": {"type": "duration", "seconds": max(1, round(duration))}}
    if fmt == "verbose_json":
        segment = {"id": 0, "seek": 0, "start": 0.0, "end": duration, "text": text, "tokens": [1, 2]}
        segment |= {"temperature": 0.0, "avg_logprob": -0.2, "compression_ratio": 1.1, "no_speech_prob": 0.01}
        task_name = "translate" if task == "translations" else "transcribe"
        usage = answer["usage"]
        answer = {"task": task_name, "language": "english", "duration": duration, "text": text}
        answer |= {"segments": [segment], "usage": usage}
    await send_json(send, 200, answer, headers)


def _video_view(video: dict[str, Any]) -> dict[str, Any]:
    elapsed = (time.time() - video["created"]) * 1000
    queued, running = video["queued_ms"], video["run_ms"]
    status, progress = "queued", 0
    if elapsed >= queued:
        status, progress = "in_progress", int(min(99, (elapsed - queued) * 100 / max(1, running)))
    if elapsed >= queued + running:
        status, progress = ("failed", progress) if video["fail"] else ("completed", 100)
    return {
        "id": video["id"],
        "object": "video",
        "model": video["model"],
        "status": status,
        "progress": progress,
        "created_at": int(video["created"]),
        "completed_at": int(time.time()) if status == "completed" else None,
        "expires_at": None,
        "prompt": video["prompt"],
        "seconds": video["seconds"],
        "size": video["size"],
        "remixed_from_video_id": None,
        "error": {"code": "stand_in_failure", "message": "told to fail"} if status == "failed" else None,
    }


async def videos(request: Request, behavior: dict[str, Any], send: Send, headers: Any) -> None:
    path = request.path.removeprefix("/v1/videos").strip("/")
    if request.method == "POST" and not path:
        if request.form is None:
            raise FieldError(400, "POST /v1/videos takes multipart/form-data here")
        key = request.headers.get("idempotency-key")
        if key and key in IDEMPOTENT:
            return await send_json(send, 200, _video_view(VIDEOS[IDEMPOTENT[key]]), headers)
        video = {
            "id": f"video_{uuid.uuid4().hex}",
            "created": time.time(),
            "model": _need_model(_field(request, "model")),
            "prompt": _field(request, "prompt"),
            "seconds": _field(request, "seconds") or "4",
            "size": _field(request, "size") or "720x1280",
            "queued_ms": behavior["video_queued_ms"],
            "run_ms": behavior["video_run_ms"],
            "fail": bool(behavior["video_fail"]),
        }
        VIDEOS[video["id"]] = video
        if key:
            IDEMPOTENT[key] = video["id"]
        return await send_json(send, 200, _video_view(video), headers)
    video_id, _, rest = path.partition("/")
    video = VIDEOS.get(video_id)
    if video is None:
        raise FieldError(404, f"Video '{video_id}' not found", code="not_found")
    if request.method == "GET" and not rest:
        return await send_json(send, 200, _video_view(video), headers)
    if request.method == "GET" and rest == "content":
        data = b"\x00\x00\x00\x18ftypmp42" + f"stand-in video {video_id}".encode() * 100
        start = [(b"content-type", b"video/mp4"), (b"content-length", str(len(data)).encode()), *headers]
        await send({"type": "http.response.start", "status": 200, "headers": start})
        await send({"type": "http.response.body", "body": data})
        return
    raise FieldError(404, f"Invalid URL ({request.method} {request.path})")


def route(method: str, path: str) -> Any:
    """The media handler for a request, or None."""
    if path.startswith("/v1/videos"):
        return videos
    return {
        ("POST", "/v1/images/generations"): images_generations,
        ("POST", "/v1/images/edits"): images_edits,
        ("POST", "/v1/audio/speech"): speech,
        ("POST", "/v1/audio/transcriptions"): transcribe,
        ("POST", "/v1/audio/translations"): transcribe,
    }.get((method, path))


def reset() -> None:
    VIDEOS.clear()
    IDEMPOTENT.clear()
