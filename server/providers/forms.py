"""Multipart bodies sent upstream (image edits, transcriptions, video references) without reading their
files into memory: the body is encoded part by part as it is sent, files read from disk in chunks, with
its exact length known up front (so the request carries a Content-Length, as providers expect).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

CHUNK = 256 * 1024


def _quoted(text: str) -> str:
    """A header parameter value: no quotes, CR or LF can break out of it."""
    return text.replace("\\", "\\\\").replace('"', "%22").replace("\r", "").replace("\n", "")


@dataclass(slots=True, frozen=True)
class FilePart:
    """A file part: on disk (`path`, the usual case) or small bytes in memory (`data`)."""

    field: str
    filename: str
    content_type: str
    path: Path | None = None
    data: bytes | None = None
    size: int = 0

    def head(self, boundary: str) -> bytes:
        return (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(self.field)}";'
            f' filename="{_quoted(self.filename)}"\r\nContent-Type: {_quoted(self.content_type)}\r\n\r\n'
        ).encode()

    @property
    def length(self) -> int:
        return len(self.data) if self.data is not None else self.size


@dataclass(slots=True)
class Form:
    fields: list[tuple[str, str]] = field(default_factory=list)
    files: list[FilePart] = field(default_factory=list)

    def value(self, name: str) -> str | None:
        found = [value for key, value in self.fields if key == name]
        return found[-1] if found else None

    def encode(self, boundary: str | None = None) -> EncodedForm:
        return EncodedForm(self, boundary or secrets.token_hex(16))


class EncodedForm:
    """The form as multipart/form-data: its content type, its exact length and its bytes as they are sent."""

    def __init__(self, form: Form, boundary: str) -> None:
        self.form = form
        self.boundary = boundary
        self.content_type = f"multipart/form-data; boundary={boundary}"
        self._fields = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n{value}\r\n'.encode()
            for name, value in form.fields
        )
        self._tail = f"--{boundary}--\r\n".encode()
        self.length = (
            len(self._fields) + sum(len(part.head(boundary)) + part.length + 2 for part in form.files) + len(self._tail)
        )

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self._fields
        for part in self.form.files:
            yield part.head(self.boundary)
            if part.data is not None:
                yield part.data
            elif part.path is not None:
                handle = await asyncio.to_thread(part.path.open, "rb")
                try:
                    while piece := await asyncio.to_thread(handle.read, CHUNK):
                        yield piece
                finally:
                    handle.close()
            yield b"\r\n"
        yield self._tail

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.chunks()
