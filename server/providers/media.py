"""The shapes media calls return from every provider kind: audio and video bytes as a stream (never
buffered whole), and a non-JSON answer (a transcript as text, SRT or VTT) with its content type."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


class ByteStream(Protocol):
    """An upstream answer of bytes, read as it arrives; raises UpstreamError if it breaks."""

    content_type: str

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True, frozen=True)
class RawAnswer:
    """A whole non-JSON answer (small: a transcript) and its content type."""

    content_type: str
    body: bytes


class MemoryStream:
    """Bytes the gateway made itself (the mock's audio and video), served as a stream in chunks."""

    def __init__(self, data: bytes, content_type: str, chunk: int = 64 * 1024) -> None:
        self.content_type = content_type
        self._data = data
        self._chunk = chunk

    async def _chunks(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self._data), self._chunk):
            yield self._data[start : start + self._chunk]

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def aclose(self) -> None:
        return None
