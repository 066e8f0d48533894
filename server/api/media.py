"""What the media routes share: a multipart body streamed to disk, turned into the form a provider is
sent; the gateway's own address for signed URLs; a call without a JSON body; one refusal path that
records a call that failed after it started."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from litestar import Request

from server.api.common import REQUEST_ID_SCOPE_KEY, new_call
from server.api.multipart import Multipart, UploadedFile, receive_multipart
from server.api.stream_response import RelayStream
from server.dialects.base import Dialect
from server.errors import MISSING_FIELD, GatewayError
from server.files.service import Upload
from server.gateway import Gateway
from server.providers.forms import FilePart, Form
from server.settlement import Ticket
from server.types import Call


def base_url(request: Request[Any, Any, Any]) -> str:
    """The scheme and host the client called (signed URLs point back at it unless [files] public_url)."""
    return f"{request.url.scheme}://{request.url.netloc}"


def declared_length(request: Request[Any, Any, Any]) -> int | None:
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


async def receive_form(request: Request[Any, Any, Any], gw: Gateway) -> Multipart:
    """The multipart body as it arrives: files to the incoming folder (never whole in memory), each at most
    `[files] max_file_mb`; fields in memory."""
    chunks: AsyncIterator[bytes] = request.stream()
    return await receive_multipart(
        chunks, request.headers.get("content-type"), gw.files.blobs.incoming, max_file_bytes=gw.files.max_file_bytes
    )


def fields_of(form: Multipart) -> dict[str, Any]:
    """The text fields (a repeated one, such as `timestamp_granularities[]`, as a list)."""
    out: dict[str, Any] = {}
    for name, values in form.fields.items():
        key = name.removesuffix("[]")
        out[key] = values if name.endswith("[]") or len(values) > 1 else values[-1]
    return out


def the_file(form: Multipart, name: str) -> UploadedFile:
    found = [upload for upload in form.files if upload.field in (name, f"{name}[]")]
    if not found:
        raise MISSING_FIELD(field=name)
    return found[0]


def upload_of(found: UploadedFile) -> Upload:
    return Upload(found.path, found.filename, found.content_type, found.size, found.sha256)


def provider_form(form: Multipart, skip: tuple[str, ...] = ()) -> Form:
    """The received form as it is re-sent upstream (files streamed from disk again)."""
    fields = [(name, value) for name, values in form.fields.items() if name not in skip for value in values]
    files = [
        FilePart(upload.field, upload.filename, upload.content_type, path=upload.path, size=upload.size)
        for upload in form.files
    ]
    return Form(fields, files)


def form_call(request: Request[Any, Any, Any], dialect: Dialect, body: dict[str, Any], files: list[Any]) -> Call:
    """A call whose body is a form: its fields as the body (what is logged and checked), its files described
    (name, size, hash) but never logged whole."""
    call = new_call(request, dialect, body)
    described = [{"field": f.field, "filename": f.filename, "bytes": f.size, "sha256": f.sha256} for f in files]
    call.raw = orjson.dumps({**body, "files": described})
    return call


def model_free_call(request: Request[Any, Any, Any], dialect: Dialect, body: dict[str, Any]) -> Call:
    return new_call(request, dialect, body, model_required=False)


def refused(gw: Gateway, ticket: Ticket, error: GatewayError, headers: dict[str, str] | None = None) -> GatewayError:
    """Record a call that failed after it started (nothing billed) and give the error its headers."""
    gw.path.fail(ticket, error)
    error.headers = {**ticket.admission.headers, **(headers or {}), **error.headers}
    return error


def stream_bytes(gw: Gateway, chunks: AsyncIterator[bytes], media_type: str, headers: dict[str, str]) -> RelayStream:
    return RelayStream(
        chunks,  # type: ignore[arg-type]
        write_timeout=gw.settings.server.stream_write_timeout_s,
        media_type=media_type,
        headers=headers,
    )


def request_id(request: Request[Any, Any, Any]) -> str | None:
    return request.scope.get(REQUEST_ID_SCOPE_KEY)  # type: ignore[return-value]
