"""The mock provider's media: everything deterministic and local, so a fresh install serves every media
endpoint with no network. Images are real PNGs from the prompt's hash; speech a WAV or PCM tone (or silent
MP3 frames); a transcript is derived from the audio's bytes; video and music are jobs that finish
`job_seconds` after their submission (their state lives in their id, so a restarted gateway polls them
on), a video being a labelled placeholder MP4 and music a WAV tone. A prompt containing `mock:fail`
makes a job fail halfway (for trying failure handling).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from typing import Any

import orjson

from server.errors import UpstreamError
from server.media import synth
from server.media.audio_info import seconds_bound
from server.providers.forms import Form
from server.providers.media import MemoryStream, RawAnswer

SPEECH_FORMATS = {"mp3": "audio/mpeg", "wav": "audio/wav", "pcm": "audio/pcm"}
CHARS_PER_SECOND = 15  # how fast the mock "speaks"
MAX_SPEECH_S = 600
MAX_MUSIC_S = 300
FAIL_MARK = "mock:fail"


def _refuse(message: str) -> UpstreamError:
    return UpstreamError(400, message, retryable=False, upstream_status=400)


def _images(seed: bytes, body: dict[str, Any], count: int, prompt: str) -> dict[str, Any]:
    width, height = synth.dimensions(body.get("size"))
    data = []  # DALL-E's answer shape: no size, quality or usage fields
    for index in range(count):
        image = synth.png(synth.digest(seed.hex(), index), width, height)
        data.append({"b64_json": base64.b64encode(image).decode(), "revised_prompt": prompt})
    return {"created": int(time.time()), "data": data}


async def _file_digest(form: Form) -> tuple[bytes, int, bytes]:
    """(sha256 of the uploaded file, its size, its first bytes) read in chunks off the event loop."""
    part = form.files[0]
    if part.data is not None:
        return hashlib.sha256(part.data).digest(), len(part.data), part.data[:4096]

    def read() -> tuple[bytes, int, bytes]:
        digest, size, head = hashlib.sha256(), 0, b""
        assert part.path is not None
        with part.path.open("rb") as handle:
            while piece := handle.read(256 * 1024):
                head = head or piece[:4096]
                size += len(piece)
                digest.update(piece)
        return digest.digest(), size, head

    return await asyncio.to_thread(read)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1


class MockMedia:
    """Mixed into MockProvider; `job_seconds` comes from the provider's settings."""

    job_seconds: float

    async def images_generate(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        prompt = str(body.get("prompt") or "")
        seed = synth.digest(model, prompt, body.get("size"), body.get("quality"), body.get("style"))
        return _images(seed, body, _count(body.get("n")), prompt)

    async def images_edit(self, model: str, form: Form) -> dict[str, Any]:
        if not form.files:
            raise _refuse("an image edit needs an image")
        file_hash, _, _ = await _file_digest(form)
        prompt = form.value("prompt") or ""
        body = {"size": form.value("size"), "quality": form.value("quality")}
        n = form.value("n")
        return _images(synth.digest(model, prompt, file_hash.hex()), body, int(n) if n and n.isdigit() else 1, prompt)

    async def speech(self, model: str, body: dict[str, Any]) -> MemoryStream:
        fmt = body.get("response_format") or "mp3"
        if fmt not in SPEECH_FORMATS:
            raise _refuse(f"the mock provider renders speech as {', '.join(SPEECH_FORMATS)}, not {fmt}")
        text = str(body.get("input") or "")
        speed = body.get("speed") if isinstance(body.get("speed"), int | float) else 1.0
        seconds = min(MAX_SPEECH_S, max(1.0, len(text) / CHARS_PER_SECOND) / max(0.25, float(speed)))
        if fmt == "mp3":
            return MemoryStream(synth.mp3_silence(seconds), SPEECH_FORMATS[fmt])
        samples = synth.pcm_tone(synth.digest(model, text, body.get("voice")), seconds)
        return MemoryStream(synth.wav(samples) if fmt == "wav" else samples, SPEECH_FORMATS[fmt])

    async def transcribe(self, model: str, form: Form, task: str) -> RawAnswer:
        if not form.files:
            raise _refuse("a transcription needs a file")
        file_hash, size, head = await _file_digest(form)
        seconds = seconds_bound(size, head)
        verb = "translation" if task == "translations" else "transcript"
        text = f"Mock {verb} of {form.files[0].filename}: {size} bytes, {seconds} s, sha256 {file_hash.hex()[:12]}."
        return RawAnswer("application/json", _transcript_json(text, seconds, form))

    async def job_create(self, kind: str, model: str, form: Form, key: str) -> dict[str, Any]:
        prompt = form.value("prompt") or ""
        seconds = int(form.value("seconds") or 4)
        size = form.value("size") or "auto"
        fail = int(FAIL_MARK in prompt)
        digest = synth.digest(kind, model, prompt, seconds, size, key).hex()[:16]
        upstream_id = f"mock.{kind}.{int(time.time() * 1000)}.{seconds}.{fail}.{size}.{digest}"
        return {"id": upstream_id, "status": "queued", "progress": 0, "seconds": str(seconds)}

    async def job_status(self, kind: str, upstream_id: str) -> dict[str, Any]:
        _, _, created, seconds, fail, _, _ = _parts(upstream_id)
        elapsed = time.time() * 1000 - created
        share = 1.0 if self.job_seconds <= 0 else min(1.0, elapsed / (self.job_seconds * 1000))
        answer: dict[str, Any] = {"id": upstream_id, "seconds": str(seconds), "progress": int(share * 100)}
        if fail and share >= 0.5:
            return answer | {
                "status": "failed",
                "error": {"code": "mock_failure", "message": "the prompt asked to fail"},
            }
        if share >= 1.0:
            return answer | {"status": "completed", "progress": 100}
        return answer | {"status": "in_progress" if share > 0 else "queued"}

    async def job_content(self, kind: str, upstream_id: str) -> MemoryStream:
        _, _, _, seconds, _, size, digest = _parts(upstream_id)
        seed = bytes.fromhex(digest)
        if kind == "video":
            return MemoryStream(synth.mp4_placeholder(seed, seconds, size), "video/mp4")
        return MemoryStream(synth.wav(synth.pcm_tone(seed, min(seconds, MAX_MUSIC_S))), "audio/wav")


def _parts(upstream_id: str) -> tuple[str, str, int, int, int, str, str]:
    try:
        mark, kind, created, seconds, fail, size, digest = upstream_id.split(".")
        return mark, kind, int(created), int(seconds), int(fail), size, digest
    except ValueError:
        raise UpstreamError(404, f"no mock job {upstream_id!r}", retryable=False, upstream_status=404) from None


def _transcript_json(text: str, seconds: int, form: Form) -> bytes:
    """The answer in OpenAI's verbose_json shape (the dialect renders the format the client asked)."""
    words = text.split(" ")
    step = seconds / max(1, len(words))
    answer = {
        "task": "transcribe",
        "language": form.value("language") or "english",
        "duration": float(seconds),
        "text": text,
        "segments": [
            {
                "id": 0,
                "seek": 0,
                "start": 0.0,
                "end": float(seconds),
                "text": text,
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": -0.1,
                "compression_ratio": 1.0,
                "no_speech_prob": 0.0,
            }
        ],
        "words": [
            {"word": w, "start": round(i * step, 3), "end": round((i + 1) * step, 3)} for i, w in enumerate(words)
        ],
        "usage": {"type": "duration", "seconds": seconds},
    }
    return orjson.dumps(answer)
