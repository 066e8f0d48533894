"""Realtime events as the proxy reads them: pure functions over parsed JSON, no I/O.

Both protocol generations are read: the GA names (`response.output_text.delta`,
`response.output_audio.delta`, `session.audio.input.format` objects) and the beta ones
(`response.text.delta`, `response.audio.delta`, `input_audio_format` strings). What is measured here is
only what the gateway must meter or bound: the text characters and audio milliseconds a response delivers,
the audio a client appends, the output cap a response or a session sets. Everything else passes through
untouched.
"""

from __future__ import annotations

import binascii
from typing import Any

import orjson

from server.errors import INVALID_VALUE, GatewayError

TEXT_DELTAS = frozenset({"response.output_text.delta", "response.text.delta", "response.function_call_arguments.delta"})
AUDIO_DELTAS = frozenset({"response.output_audio.delta", "response.audio.delta"})
SESSION_EVENTS = frozenset({"session.created", "session.updated"})
PCM16_24K = 48_000  # bytes per second of the default format (16-bit mono at 24 kHz)
G711 = 8_000
MAX_OUTPUT_TOKENS = 4096  # the most OpenAI's realtime models take for one response
# A response's cap is `max_output_tokens` in GA and beta; a beta session's is `max_response_output_tokens`.
CAP_FIELDS = ("max_output_tokens", "max_response_output_tokens")


def parse(text: str | bytes) -> dict[str, Any] | None:
    """An event object, or None for anything that is not a JSON object with a string `type`."""
    try:
        event = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and isinstance(event.get("type"), str) else None


def dumps(event: dict[str, Any]) -> str:
    return orjson.dumps(event).decode()


def decoded_size(b64: Any) -> int:
    """Bytes carried by a base64 string (0 for anything else); counted without decoding."""
    if not isinstance(b64, str) or not b64:
        return 0
    padding = len(b64) - len(b64.rstrip("="))
    return max(0, len(b64) * 3 // 4 - padding)


def is_base64(b64: Any) -> bool:
    try:
        binascii.a2b_base64(b64)
    except (binascii.Error, TypeError, ValueError):
        return False
    return True


def bytes_per_second(audio_format: Any) -> int:
    """Bytes per second of an audio format: GA objects ({"type": "audio/pcm", "rate": 24000}, audio/pcmu,
    audio/pcma) or beta strings (pcm16, g711_ulaw, g711_alaw); the default format when unknown."""
    if isinstance(audio_format, dict):
        kind = audio_format.get("type")
        if kind in ("audio/pcmu", "audio/pcma"):
            return G711
        rate = audio_format.get("rate")
        return 2 * rate if isinstance(rate, int) and 8000 <= rate <= 192_000 else PCM16_24K
    if audio_format in ("g711_ulaw", "g711_alaw"):
        return G711
    return PCM16_24K


def audio_ms(b64: Any, rate: int) -> int:
    """Milliseconds of audio in a base64 chunk at `rate` bytes per second."""
    return decoded_size(b64) * 1000 // max(1, rate)


def session_audio(session: Any) -> tuple[int, int]:
    """(input, output) bytes per second of a session object (from session.created / session.updated)."""
    if not isinstance(session, dict):
        return PCM16_24K, PCM16_24K
    audio = session.get("audio")
    if isinstance(audio, dict):  # GA
        sides = [audio.get(side) if isinstance(audio.get(side), dict) else {} for side in ("input", "output")]
        return bytes_per_second(sides[0].get("format")), bytes_per_second(sides[1].get("format"))
    return bytes_per_second(session.get("input_audio_format")), bytes_per_second(session.get("output_audio_format"))


def output_cap(options: Any, param: str) -> int | None:
    """The output cap an object sets (a response's options, or a session): an integer, or None for `inf` or
    none given. A malformed one is the client's 400, naming `param`."""
    if not isinstance(options, dict):
        return None
    for name in CAP_FIELDS:
        value = options.get(name)
        if value is None or value == "inf":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_OUTPUT_TOKENS:
            raise INVALID_VALUE(field=f"{param}.{name}", what=f"an integer from 1 to {MAX_OUTPUT_TOKENS}, or 'inf'")
        return value
    return None


def audio_output(session: Any, options: Any) -> bool:
    """Whether a response may answer in audio: its own modalities, else the session's (audio by default)."""
    for source in (options, session):
        if isinstance(source, dict):
            modalities = source.get("output_modalities", source.get("modalities"))
            if isinstance(modalities, list):
                return "audio" in modalities
    return True


def error_event(error: GatewayError, client_event_id: Any, number: int) -> str:
    """An `error` event in OpenAI's realtime shape, naming the client event that caused it (if any)."""
    body = error.openai_body()["error"]
    body["event_id"] = client_event_id if isinstance(client_event_id, str) else None
    return dumps({"type": "error", "event_id": f"event_gw_{number}", "error": body})
