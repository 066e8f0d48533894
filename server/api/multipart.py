"""Multipart bodies streamed to disk: files are written chunk by chunk as they arrive (never held whole in
memory), hashed on the way, and refused (413) the moment one passes its size cap; small text fields are
kept in memory. Parsing is python-multipart's streaming parser.

Failure behaviour: a malformed body is a 400, an oversized file or field a 413; either way every file
already written is deleted before the error is raised.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from server.errors import FILE_TOO_LARGE, INVALID_MULTIPART, REQUEST_TOO_LARGE, GatewayError

MAX_FIELD_BYTES = 64 * 1024
MAX_PARTS = 64


@dataclass(slots=True)
class UploadedFile:
    field: str
    filename: str
    content_type: str
    path: Path
    size: int = 0
    sha256: str = ""


@dataclass(slots=True)
class Multipart:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)

    def value(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else None

    def discard(self) -> None:
        """Delete every file written (the caller moves the ones it keeps first)."""
        for upload in self.files:
            upload.path.unlink(missing_ok=True)


def boundary_of(content_type: str | None) -> bytes:
    kind, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise INVALID_MULTIPART(detail="The body must be multipart/form-data with a boundary.")
    return boundary


class _Collector:
    """The parser's callbacks: headers per part, then its data to a field buffer or a file."""

    def __init__(self, directory: Path, max_file_bytes: int) -> None:
        self.result = Multipart()
        self._directory = directory
        self._max_file_bytes = max_file_bytes
        self._headers: dict[bytes, bytes] = {}
        self._name = b""
        self._value = b""
        self._part: tuple[str, bytearray] | tuple[UploadedFile, BinaryIO, Any] | None = None
        self.problem: GatewayError | None = None

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda data, start, end: self._header_bytes("name", data[start:end]),
            "on_header_value": lambda data, start, end: self._header_bytes("value", data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def _begin(self) -> None:
        self._headers, self._part = {}, None
        if len(self.result.files) + sum(len(v) for v in self.result.fields.values()) >= MAX_PARTS:
            self._fail(INVALID_MULTIPART(detail=f"At most {MAX_PARTS} parts are accepted."))

    def _header_bytes(self, which: str, data: bytes) -> None:
        if which == "name":
            self._name += data
        else:
            self._value += data

    def _header_end(self) -> None:
        self._headers[self._name.lower()] = self._value
        self._name = self._value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode(errors="replace")
        if b"filename" not in options:
            self._part = (name, bytearray())
            return
        fd, raw_path = tempfile.mkstemp(prefix="upload-", dir=self._directory)
        upload = UploadedFile(
            field=name,
            filename=os.path.basename(options[b"filename"].decode(errors="replace")) or "upload",
            content_type=self._headers.get(b"content-type", b"application/octet-stream").decode(errors="replace"),
            path=Path(raw_path),
        )
        self.result.files.append(upload)
        self._part = (upload, os.fdopen(fd, "wb"), hashlib.sha256())

    def _data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        if part is None or self.problem is not None:
            return
        piece = data[start:end]
        if len(part) == 2:
            buffer = part[1]
            buffer.extend(piece)
            if len(buffer) > MAX_FIELD_BYTES:
                self._fail(REQUEST_TOO_LARGE(detail=f"Field '{part[0]}' is too large.", param=part[0]))
            return
        upload, out, digest = part
        upload.size += len(piece)
        if upload.size > self._max_file_bytes:
            self._fail(FILE_TOO_LARGE(name=upload.filename, limit=self._max_file_bytes, param=upload.field))
            return
        out.write(piece)
        digest.update(piece)

    def _end(self) -> None:
        part, self._part = self._part, None
        if part is None:
            return
        if len(part) == 2:
            name, buffer = part
            self.result.fields.setdefault(name, []).append(buffer.decode("utf-8", errors="replace"))
            return
        upload, out, digest = part
        out.close()
        upload.sha256 = digest.hexdigest()

    def _fail(self, problem: GatewayError) -> None:
        if self.problem is None:
            self.problem = problem
        if self._part is not None and len(self._part) == 3:
            self._part[1].close()
        self._part = None

    def close(self) -> None:
        if self._part is not None and len(self._part) == 3:
            self._part[1].close()


async def receive_multipart(
    chunks: AsyncIterator[bytes], content_type: str | None, directory: Path, *, max_file_bytes: int
) -> Multipart:
    """Parse a multipart body as it arrives; files land in `directory` (the caller keeps or discards them)."""
    directory.mkdir(parents=True, exist_ok=True)
    collector = _Collector(directory, max_file_bytes)
    parser = MultipartParser(boundary_of(content_type), collector.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in chunks:
            parser.write(chunk)
            if collector.problem is not None:
                raise collector.problem
        parser.finalize()
        if collector.problem is not None:
            raise collector.problem
    except MultipartParseError:
        collector.close()
        collector.result.discard()
        raise INVALID_MULTIPART(detail="The multipart body is malformed.") from None
    except BaseException:
        collector.close()
        collector.result.discard()
        raise
    return collector.result
