"""Deterministic media for the mock provider, made in pure Python in milliseconds: a real PNG whose colours
come from the prompt's hash, a real WAV (or raw PCM) tone whose pitch does, silent but valid MP3 frames,
and a clearly labelled placeholder MP4 (a valid ISO media file with the requested duration and no
pictures: making real video needs a codec the gateway does not carry)."""

from __future__ import annotations

import hashlib
import math
import struct
import zlib

SAMPLE_RATE = 24_000  # OpenAI's speech sample rate for wav and pcm
MAX_SIDE = 2048
PLACEHOLDER_LABEL = b"gateway mock provider: placeholder video, no pictures"


def digest(*parts: object) -> bytes:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()


def dimensions(size: str | None) -> tuple[int, int]:
    """'1024x1536' as (1024, 1536); 'auto' or nothing as 1024 square; each side at most 2048."""
    width, sep, height = (size or "").partition("x")
    if sep and width.isdigit() and height.isdigit():
        return max(1, min(int(width), MAX_SIDE)), max(1, min(int(height), MAX_SIDE))
    return 1024, 1024


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(seed: bytes, width: int, height: int) -> bytes:
    """Eight horizontal bands in colours taken from `seed`: a real, small (it compresses well) RGB PNG."""
    bands = [bytes(seed[(3 * i) % 30 : (3 * i) % 30 + 3]) for i in range(8)]
    rows = []
    for band in range(8):
        line = b"\x00" + bands[band] * width
        rows.append(line * (height * (band + 1) // 8 - height * band // 8))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"".join(rows), 6))
        + _chunk(b"IEND", b"")
    )


def pcm_tone(seed: bytes, seconds: float, rate: int = SAMPLE_RATE) -> bytes:
    """16-bit mono samples of a sine tone (pitch from `seed`, 200-1,000 Hz), `seconds` long."""
    period = rate // (200 + seed[0] * 800 // 255)  # a whole number of samples per period: repeat one
    one = struct.pack(f"<{period}h", *(int(9000 * math.sin(2 * math.pi * i / period)) for i in range(period)))
    total = max(1, int(seconds * rate))
    return (one * (total // period + 1))[: total * 2]


def wav(samples: bytes, rate: int = SAMPLE_RATE) -> bytes:
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(samples),
        b"WAVE",
        b"fmt ",
        16,
        1,
        1,
        rate,
        rate * 2,
        2,
        16,
        b"data",
        len(samples),
    )
    return header + samples


def mp3_silence(seconds: float) -> bytes:
    """MPEG-1 Layer III frames, 128 kbit/s, 44.1 kHz mono, all side information zero: valid, silent."""
    frame = b"\xff\xfb\x90\xc0" + bytes(417 - 4)
    return frame * max(1, math.ceil(seconds * 44_100 / 1152))


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def mp4_placeholder(seed: bytes, seconds: int, size: str | None) -> bytes:
    """ftyp + moov (mvhd with the duration) + a user-data box carrying the label and the request's hash."""
    width, height = dimensions(size)
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = struct.pack(">B3xIIII", 0, 0, 0, 1000, seconds * 1000) + struct.pack(">IH10x", 0x10000, 0x100) + matrix
    mvhd += bytes(24) + struct.pack(">I", 2)
    note = PLACEHOLDER_LABEL + f" ({width}x{height}, {seconds} s, {seed[:8].hex()})".encode()
    moov = _box(b"moov", _box(b"mvhd", mvhd) + _box(b"udta", _box(b"\xa9cmt", note)))
    return _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2mp41") + moov + _box(b"free", note)
