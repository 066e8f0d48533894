"""The media pieces that are pure rules: signed URLs, the storage quota, multipart bodies sent upstream,
audio durations, the mock's media, transcript renderings and metering of media units."""

from __future__ import annotations

import asyncio
import hashlib
import struct
import zlib
from pathlib import Path

import pytest

from server.dialects.audio import _render_text
from server.errors import GatewayError
from server.files.quota import StorageQuota
from server.files.signing import UrlSigner
from server.media import synth
from server.media.audio_info import seconds_bound, wav_seconds
from server.metering import Rates, charge
from server.providers.forms import FilePart, Form
from server.settings import PriceCard
from server.types import Unit, Usage, image_unit
from tests.upstreams.asgi_kit import parse_form


def test_a_signed_url_works_until_it_expires_and_not_once_changed() -> None:
    signer = UrlSigner(b"k" * 32, ttl_s=60)
    expires, signature = signer.sign("file-abc", now_s=1_000)
    assert expires == 1_060
    assert signer.valid("file-abc", str(expires), signature, now_s=1_060)
    assert not signer.valid("file-abc", str(expires), signature, now_s=1_061)  # expired
    assert not signer.valid("file-abd", str(expires), signature, now_s=1_000)  # another file
    assert not signer.valid("file-abc", str(expires + 1), signature, now_s=1_000)  # a longer life
    flipped = signature[:-1] + ("1" if signature.endswith("0") else "0")
    assert not signer.valid("file-abc", str(expires), flipped, now_s=1_000)
    assert not signer.valid("file-abc", "-5", signature, now_s=1_000)
    other = UrlSigner(b"x" * 32, ttl_s=60)  # another installation's key signs nothing here
    assert not signer.valid("file-abc", str(expires), other.sign("file-abc", 1_000)[1], now_s=1_000)
    url = signer.url("https://gw.example", "file-abc", now_s=1_000)
    assert url == f"https://gw.example/v1/files/file-abc/content?expires=1060&signature={signature}"


def test_concurrent_uploads_cannot_pass_the_quota_together() -> None:
    quota = StorageQuota({"p": 600})
    first = quota.reserve("p", 1_000, 300)
    with pytest.raises(GatewayError) as info:
        quota.reserve("p", 1_000, 200)  # 600 used + 300 reserved + 200 > 1,000
    assert (info.value.status, info.value.code) == (413, "storage_quota_exceeded")
    quota.confirm(first, 250)  # it weighed less than declared
    quota.settle(first, 250)
    assert (quota.in_use("p"), quota.reserved) == (850, {})
    second = quota.reserve("p", 1_000, 150)
    with pytest.raises(GatewayError):
        quota.confirm(second, 151)
    quota.settle(second, None)
    quota.free("p", 850)
    assert quota.in_use("p") == 0 and quota.reserved == {}


def test_a_form_streamed_upstream_has_exactly_its_declared_length(tmp_path: Path) -> None:
    audio = tmp_path / "a.wav"
    audio.write_bytes(bytes(range(256)) * 3000)
    form = Form(
        [("model", "whisper-1"), ("prompt", 'quote " and\r\nnewline')],
        [FilePart("file", 'evil"\r\nname.wav', "audio/wav", path=audio, size=audio.stat().st_size),
         FilePart("mask", "m.png", "image/png", data=b"\x89PNG")],
    )  # fmt: skip
    encoded = form.encode("b0undary")

    async def collect() -> bytes:
        return b"".join([chunk async for chunk in encoded])

    body = asyncio.run(collect())
    assert len(body) == encoded.length
    parsed = parse_form(encoded.content_type, body)
    assert parsed["fields"]["model"] == ["whisper-1"]
    sent = {f["field"]: f for f in parsed["files"]}
    assert sent["file"]["sha256"] == hashlib.sha256(audio.read_bytes()).hexdigest()
    assert sent["file"]["filename"] == "evil%22name.wav"  # no header injection through a file name
    assert sent["mask"]["size"] == 4


def test_audio_duration_from_a_wav_header_else_a_bound_from_its_size() -> None:
    wav = synth.wav(synth.pcm_tone(b"\x01" * 32, 2.5))
    assert wav_seconds(wav[:4096]) == 2.5
    assert seconds_bound(len(wav), wav[:64]) == 3
    assert wav_seconds(b"ID3\x03 not a wav") is None
    assert seconds_bound(25_000_000, b"ID3") == 25_000  # 8 kbit/s: no real file lasts longer


def test_the_mocks_media_are_real_files() -> None:
    png = synth.png(synth.digest("prompt"), 64, 32)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (64, 32)
    idat = png[png.index(b"IDAT") + 4 : png.index(b"IEND") - 8]
    assert len(zlib.decompress(idat)) == 32 * (1 + 64 * 3)
    assert synth.png(synth.digest("prompt"), 64, 32) == png  # deterministic
    mp3 = synth.mp3_silence(1.0)
    assert mp3[:2] == b"\xff\xfb" and len(mp3) % 417 == 0
    mp4 = synth.mp4_placeholder(synth.digest("v"), 8, "1280x720")
    assert mp4[4:8] == b"ftyp" and synth.PLACEHOLDER_LABEL in mp4
    duration = struct.unpack(">I", mp4[mp4.index(b"mvhd") + 20 : mp4.index(b"mvhd") + 24])[0]
    assert duration == 8000  # milliseconds, at a timescale of 1000


def test_transcripts_render_as_text_srt_and_vtt() -> None:
    answer = {"text": "hello there", "segments": [{"start": 0.0, "end": 61.5, "text": " hello there"}]}
    assert _render_text(answer, "text") == "hello there\n"
    assert _render_text(answer, "srt") == "1\n00:00:00,000 --> 00:01:01,500\nhello there\n"
    assert _render_text(answer, "vtt") == "WEBVTT\n\n00:00:00.000 --> 00:01:01.500\nhello there\n"


def test_media_units_are_priced_by_the_card_and_rounded_up_once() -> None:
    card = PriceCard(
        per_image={"1024x1024": "0.04", "1024x1024/hd": "0.08", "1792x1024": "0.12"},  # type: ignore[dict-item]
        per_1m_characters="15",  # type: ignore[arg-type]
        per_minute_audio="0.006",  # type: ignore[arg-type]
        per_second_video="0.1",  # type: ignore[arg-type]
        per_second_music="0.02",  # type: ignore[arg-type]
    )
    rates = Rates.from_card(card)
    assert charge(Usage({image_unit("1024x1024", "hd"): 2}), rates).micro == 160_000
    assert charge(Usage({image_unit("1024x1024", "standard"): 1}), rates).micro == 40_000  # falls back to size
    assert charge(Usage({image_unit("4096x4096"): 1}), rates).micro == 120_000  # unknown size: the dearest
    assert charge(Usage({Unit.SPEECH_CHARACTERS: 1}), rates).micro == 15
    assert charge(Usage({Unit.AUDIO_SECONDS: 1}), rates).micro == 100
    assert charge(Usage({Unit.VIDEO_SECONDS: 4, Unit.MUSIC_SECONDS: 30, Unit.STORED_BYTES: 10**9}), rates).micro == (
        400_000 + 600_000
    )
