"""Multipart bodies are streamed to disk, hashed, and refused past their cap without being held in memory."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.api.multipart import receive_multipart
from server.errors import GatewayError

BOUNDARY = "----gatewayboundary"


def _body(file_bytes: bytes) -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="timestamp_granularities[]"\r\n\r\nword\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="timestamp_granularities[]"\r\n\r\nsegment\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="../../a.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + file_bytes
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


async def _chunks(data: bytes, size: int = 7919) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _receive(data: bytes, directory: Path, cap: int) -> object:
    return asyncio.run(
        receive_multipart(_chunks(data), f"multipart/form-data; boundary={BOUNDARY}", directory, max_file_bytes=cap)
    )


def test_files_are_streamed_to_disk_with_fields_and_a_hash(tmp_path: Path) -> None:
    audio = bytes(range(256)) * 4000
    result = _receive(_body(audio), tmp_path, 10 << 20)
    assert result.value("model") == "whisper-1"  # type: ignore[attr-defined]
    assert result.fields["timestamp_granularities[]"] == ["word", "segment"]  # type: ignore[attr-defined]
    [upload] = result.files  # type: ignore[attr-defined]
    assert upload.filename == "a.wav" and upload.content_type == "audio/wav" and upload.size == len(audio)
    assert upload.path.parent == tmp_path and upload.path.read_bytes() == audio
    assert upload.sha256 == hashlib.sha256(audio).hexdigest()


def test_a_file_past_its_cap_is_refused_and_nothing_is_left_on_disk(tmp_path: Path) -> None:
    with pytest.raises(GatewayError) as info:
        _receive(_body(b"x" * 300_000), tmp_path, 100_000)
    assert info.value.status == 413 and info.value.code == "file_too_large"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content_type", [None, "application/json", "multipart/form-data"])
def test_not_multipart_is_a_400(tmp_path: Path, content_type: str | None) -> None:
    with pytest.raises(GatewayError) as info:
        asyncio.run(receive_multipart(_chunks(b"x"), content_type, tmp_path, max_file_bytes=10))
    assert info.value.status == 400
