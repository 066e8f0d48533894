"""OpenAI audio: speech (text in, audio bytes streamed out; metered per character of input, the
reservation holding exactly that) and transcriptions / translations (an audio file in, text out; metered
per minute of audio: the reservation holds the file's duration when its header states one, else the
bound its size allows; the charge uses the duration the provider reports, else an estimate, marked).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from server.dialects import media_fields
from server.errors import UpstreamError
from server.metering import Declared
from server.money import credits_number
from server.providers.base import Provider
from server.providers.forms import Form
from server.providers.media import ByteStream
from server.types import Unit, Usage

MAX_SPEECH_INPUT = 4096  # OpenAI's limit
SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
TRANSCRIPT_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
TEXT_TYPES = {"text": "text/plain", "srt": "application/x-subrip", "vtt": "text/vtt"}
ESTIMATE_BYTES_PER_SECOND = 16_000  # 128 kbit/s: the estimate when a provider reports no duration


class SpeechDialect:
    name = "speech"
    capability = "speech"

    def declare(self, body: dict[str, Any]) -> Declared:
        text = media_fields.text(body, "input", limit=MAX_SPEECH_INPUT)
        _voice(body)
        media_fields.choice(body, "response_format", SPEECH_FORMATS, "mp3")
        media_fields.fraction(body, "speed", 0.25, 4.0)
        return Declared(output_cap=0, quantities={Unit.SPEECH_CHARACTERS: len(text)})

    def cap_output(self, body: dict[str, Any], cap: int) -> None:
        return None

    async def unary(self, provider: Provider, model: str, body: dict[str, Any]) -> tuple[ByteStream, bytes, Usage]:
        """The audio stream opened and its first chunk read (an empty answer fails over like a broken one)."""
        stream = await provider.speech(model, body)
        chunks = stream.__aiter__()
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            await stream.aclose()
            raise UpstreamError(
                502, f"{provider.name} sent no audio", retryable=True, upstream_status="empty"
            ) from None
        except BaseException:
            await stream.aclose()
            raise
        return _Rest(stream, chunks), first, Usage({Unit.SPEECH_CHARACTERS: len(body["input"])})


def _voice(body: dict[str, Any]) -> None:
    """`voice` is a name, or (newer models) an object naming a custom voice: `{"id": ...}`."""
    voice = body.get("voice")
    if isinstance(voice, dict) and isinstance(voice.get("id"), str):
        return
    media_fields.text(body, "voice", limit=256)


class _Rest:
    """A speech stream whose first chunk was already read."""

    def __init__(self, stream: ByteStream, chunks: Any) -> None:
        self.content_type = stream.content_type
        self._stream, self._chunks = stream, chunks

    def __aiter__(self) -> Any:
        return self._chunks

    async def aclose(self) -> None:
        await self._stream.aclose()


@dataclass
class TranscriptionDialect:
    """One transcription (or translation) request: `form` carries the audio file (on disk), `seconds` the
    most it can last, `size` its bytes (the estimate's base when the provider reports no duration)."""

    form: Form
    seconds: int
    size: int
    task: str = "transcriptions"
    capability: str = "transcription"
    _raw: bytes | None = None  # the answer as sent, for the text formats
    _format: str = "json"

    @property
    def name(self) -> str:
        return self.task

    def declare(self, body: dict[str, Any]) -> Declared:
        media_fields.choice(body, "response_format", TRANSCRIPT_FORMATS, "json")
        media_fields.fraction(body, "temperature", 0.0, 1.0)
        media_fields.text(body, "language", limit=16, required=False)
        media_fields.text(body, "prompt", limit=16_384, required=False)
        return Declared(output_cap=0, quantities={Unit.AUDIO_SECONDS: self.seconds})

    def cap_output(self, body: dict[str, Any], cap: int) -> None:
        return None

    def delivered_chars(self, answer: dict[str, Any]) -> int:
        text = answer.get("text")
        return len(text) if isinstance(text, str) else 0

    async def unary(self, provider: Provider, model: str, body: dict[str, Any]) -> tuple[dict[str, Any], Usage]:
        raw = await provider.transcribe(model, self.form, self.task)
        fmt = self._format = str(body.get("response_format") or "json")
        self._raw = None
        answer = _as_json(raw.body) if raw.content_type.startswith("application/json") else None
        if answer is not None and fmt in TEXT_TYPES:  # the provider answered JSON (the mock): render the format
            self._raw = _render_text(answer, fmt).encode()
        elif answer is None:
            self._raw = raw.body
            answer = {"text": raw.body.decode("utf-8", errors="replace")}
        elif fmt == "json":
            answer = {key: answer[key] for key in ("text", "usage", "logprobs") if key in answer}
        return answer, self._usage(answer)

    def _usage(self, answer: dict[str, Any]) -> Usage:
        """The provider's duration (usage.seconds, or verbose_json's duration), else an estimate, marked."""
        usage = answer.get("usage")
        reported = usage.get("seconds") if isinstance(usage, dict) and usage.get("type") == "duration" else None
        if reported is None:
            reported = answer.get("duration")
        if isinstance(reported, int | float) and not isinstance(reported, bool) and 0 <= reported <= 10**7:
            return Usage({Unit.AUDIO_SECONDS: max(1, math.ceil(reported))})
        estimate = min(self.seconds, max(1, math.ceil(self.size / ESTIMATE_BYTES_PER_SECOND)))
        return Usage({Unit.AUDIO_SECONDS: estimate}, estimated=True)

    async def open(self, provider: Provider, model: str, body: dict[str, Any]) -> Any:
        raise NotImplementedError("transcriptions are not streamed")

    def adapter(self, body: dict[str, Any], provider: Provider) -> Any:
        raise NotImplementedError("transcriptions are not streamed")

    def present(self, answer: dict[str, Any], usage: Usage, charge_micro: int) -> None:
        if self._raw is not None:
            return  # text, SRT and VTT answers carry no usage object; the cost is in x-credits-used
        found = answer.get("usage")
        if not isinstance(found, dict):
            found = answer["usage"] = {"type": "duration", "seconds": usage.get(Unit.AUDIO_SECONDS)}
        found["cost"] = credits_number(charge_micro)

    def render(self, answer: dict[str, Any]) -> tuple[bytes, str]:
        if self._raw is not None:
            return self._raw, f"{TEXT_TYPES.get(self._format, 'text/plain')}; charset=utf-8"
        return orjson.dumps(answer), "application/json"


def _as_json(raw: bytes) -> dict[str, Any] | None:
    try:
        found = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return found if isinstance(found, dict) else None


def _stamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{separator}{rest % 1000:03d}"


def _render_text(answer: dict[str, Any], fmt: str) -> str:
    """A verbose_json transcript as plain text, SRT or WebVTT (OpenAI's renderings)."""
    text = str(answer.get("text") or "")
    if fmt == "text":
        return text + "\n"
    segments = [s for s in answer.get("segments") or [] if isinstance(s, dict)] or [
        {"start": 0.0, "end": float(answer.get("duration") or 0), "text": text}
    ]
    lines = ["WEBVTT", ""] if fmt == "vtt" else []
    for number, segment in enumerate(segments, 1):
        sep = "." if fmt == "vtt" else ","
        if fmt == "srt":
            lines.append(str(number))
        lines.append(f"{_stamp(segment['start'], sep)} --> {_stamp(segment['end'], sep)}")
        lines += [str(segment.get("text", "")).strip(), ""]
    return "\n".join(lines)
