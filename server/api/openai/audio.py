"""POST /v1/audio/speech (JSON in, audio bytes streamed out with their content type) and
/v1/audio/transcriptions, /v1/audio/translations (multipart with `file`, or a JSON body carrying the audio
as base64: `{"model", "file": "<base64>", "filename": "a.wav", ...}`). The audio is streamed to disk (or
decoded there) and re-streamed upstream; the answer comes in the format asked (json, text, srt,
verbose_json, vtt). Each call is admitted, limited (`audio` class), reserved and logged like chat."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from litestar import Request, Response, post

from server.api.common import admit, gateway_of, json_body, new_call, v1
from server.api.media import declared_length, fields_of, form_call, provider_form, receive_form, stream_bytes
from server.api.multipart import Multipart, UploadedFile
from server.api.shapes import check_speech
from server.dialects.audio import SpeechDialect, TranscriptionDialect
from server.errors import FILE_TOO_LARGE, INVALID_FILE, MISSING_FIELD
from server.gateway import Gateway
from server.keys import bearer_token
from server.media.audio_info import seconds_bound

SPEECH = SpeechDialect()
SPEECH_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
HEAD_BYTES = 4096


@post(v1("/audio/speech"), status_code=200)
async def speech(request: Request[Any, Any, Any]) -> Response[Any]:
    gw = gateway_of(request)
    caller = admit(request, bearer_token(request.headers.get("authorization")))
    body = await json_body(request)
    check_speech(body)
    ticket = gw.path.start(caller, new_call(request, SPEECH, body), SPEECH)  # type: ignore[arg-type]
    binary = await gw.path.serve_binary(ticket)
    media_type = binary.media_type
    if media_type.startswith(("application/octet-stream", "binary/")):  # say what it is, as OpenAI does
        media_type = SPEECH_TYPES.get(str(body.get("response_format") or "mp3"), media_type)
    return stream_bytes(gw, binary.chunks, media_type, binary.headers)


async def _json_form(request: Request[Any, Any, Any], gw: Gateway) -> Multipart:
    """A JSON body with the audio as base64, as the form a multipart upload would have made."""
    cap = gw.files.max_file_bytes
    declared = declared_length(request)
    if declared is not None and declared > cap * 4 // 3 + 65_536:
        raise FILE_TOO_LARGE(name="file", limit=cap, param="file")
    body = await json_body(request)
    encoded = body.pop("file", None)
    if not isinstance(encoded, str) or not encoded:
        raise MISSING_FIELD(field="file")
    if encoded.startswith("data:"):
        encoded = encoded.partition(",")[2]
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise INVALID_FILE(detail="'file' must be the audio encoded as base64.", param="file") from None
    if len(data) > cap:
        raise FILE_TOO_LARGE(name="file", limit=cap, param="file")
    name = os.path.basename(str(body.pop("filename", None) or "audio.wav")) or "audio.wav"
    fd, raw = tempfile.mkstemp(prefix="upload-", dir=gw.files.blobs.incoming)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    upload = UploadedFile("file", name, _audio_type(name), Path(raw), len(data), hashlib.sha256(data).hexdigest())
    fields: dict[str, list[str]] = {}
    for field, value in body.items():  # a list is sent as OpenAI's multipart does: `field[]`, repeated
        if isinstance(value, list):
            fields[f"{field}[]"] = [str(item) for item in value]
        elif value is not None:
            fields[field] = [value if isinstance(value, str) else str(value)]
    return Multipart(fields, [upload])


def _audio_type(name: str) -> str:
    extension = name.rsplit(".", 1)[-1].lower()
    return {"wav": "audio/wav", "mp3": "audio/mpeg", "m4a": "audio/mp4", "ogg": "audio/ogg", "flac": "audio/flac",
            "webm": "audio/webm", "mp4": "audio/mp4", "mpeg": "audio/mpeg", "mpga": "audio/mpeg"}.get(
        extension, "application/octet-stream")  # fmt: skip


async def _transcribe(request: Request[Any, Any, Any], task: str) -> Response[Any]:
    gw = gateway_of(request)
    caller = admit(request, bearer_token(request.headers.get("authorization")))
    multipart = (request.headers.get("content-type") or "").startswith("multipart/")
    form = await (receive_form(request, gw) if multipart else _json_form(request, gw))
    try:
        audio = next((upload for upload in form.files if upload.field == "file"), None)
        if audio is None:
            raise MISSING_FIELD(field="file")
        with audio.path.open("rb") as handle:
            head = handle.read(HEAD_BYTES)
        body = fields_of(form)
        dialect = TranscriptionDialect(provider_form(form), seconds_bound(audio.size, head), audio.size, task)
        call = form_call(request, dialect, body, form.files)  # type: ignore[arg-type]
        ticket = gw.path.start(caller, call, dialect)  # type: ignore[arg-type]
        served = await gw.path.serve_unary(ticket)
        return Response(content=served.content, media_type=served.media_type, headers=served.headers)
    finally:
        form.discard()


@post(v1("/audio/transcriptions"), status_code=200, request_max_body_size=None)
async def transcriptions(request: Request[Any, Any, Any]) -> Response[Any]:
    return await _transcribe(request, "transcriptions")


@post(v1("/audio/translations"), status_code=200, request_max_body_size=None)
async def translations(request: Request[Any, Any, Any]) -> Response[Any]:
    return await _transcribe(request, "translations")


AUDIO_ROUTES = [speech, transcriptions, translations]
