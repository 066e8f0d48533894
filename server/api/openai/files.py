"""/v1/files: upload (multipart, streamed to disk), list, retrieve, delete, download. A project sees only
its own files (another project's id is a 404). Every answer carries `x-storage-used-bytes` and
`x-storage-limit-bytes`; an upload that would pass the plan's `storage_mb` is refused (413
`storage_quota_exceeded`) before it is stored: at once when its declared length cannot fit, else as soon
as its real size is known. Each call runs the request path like any other (scopes and the `files` rate
class, logged; stored bytes metered). A download also works without a key through a signed URL
(`?expires=…&signature=…`, see server/files/signing.py); a tampered or expired one is 403.
"""

from __future__ import annotations

from typing import Any

import orjson
from litestar import Request, Response, delete, get, post

from server.api.common import admit, client_ip, gateway_of, json_response, v1
from server.api.media import (
    declared_length,
    fields_of,
    model_free_call,
    receive_form,
    refused,
    stream_bytes,
    the_file,
    upload_of,
)
from server.clock import now_ms
from server.dialects.files import FILES
from server.errors import INTERNAL_ERROR, INVALID_VALUE, SIGNED_URL_INVALID, GatewayError
from server.gateway import Gateway
from server.keys import bearer_token
from server.store.media_protocol import Page, StoredFile
from server.types import Caller, Unit, Usage

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
MAX_LIST = 10_000


def file_object(stored: StoredFile) -> dict[str, Any]:
    return {
        "id": stored.id,
        "object": "file",
        "bytes": stored.bytes,
        "created_at": stored.created_ms // 1000,
        "filename": stored.filename,
        "purpose": stored.purpose,
        "status": "processed",
    }


def _storage(gw: Gateway, caller: Caller) -> dict[str, str]:
    assert caller.project is not None
    return gw.files.headers(caller.project_id, caller.project.plan)


async def _run(request: Request[Any, Any, Any], body: dict[str, Any], work: Any) -> Response[Any]:
    """Admit, start the call, do `work(gw, caller, ticket)` → (answer, usage), complete it; storage headers on
    every answer, refusals included."""
    gw = gateway_of(request)
    caller = admit(request, bearer_token(request.headers.get("authorization")))
    call = model_free_call(request, FILES, body)
    try:
        ticket = gw.path.start(caller, call, FILES)
    except GatewayError as exc:
        exc.headers = {**_storage(gw, caller), **exc.headers}
        raise
    try:
        answer, usage, status = await work(gw, caller, ticket)
    except GatewayError as exc:
        raise refused(gw, ticket, exc, _storage(gw, caller)) from None
    except BaseException:
        gw.path.fail(ticket, INTERNAL_ERROR())
        raise
    if isinstance(answer, Response):
        await gw.path.complete(ticket, usage, None)
        answer.headers.update({**ticket.admission.headers, **_storage(gw, caller)})
        return answer
    await gw.path.complete(ticket, usage, answer)
    return json_response(answer, headers={**ticket.admission.headers, **_storage(gw, caller)}, status=status)


@post(v1("/files"), status_code=200, request_max_body_size=None)
async def upload_file(request: Request[Any, Any, Any]) -> Response[Any]:
    async def work(gw: Gateway, caller: Caller, ticket: Any) -> tuple[Any, Usage, int]:
        assert caller.project is not None
        cap = gw.files.max_file_bytes
        declared = declared_length(request)
        reservation = gw.files.reserve(caller.project_id, caller.project.plan, min(declared or cap, cap))
        try:
            form = await receive_form(request, gw)
        except BaseException:
            gw.files.quota.settle(reservation, None)
            raise
        try:
            fields = fields_of(form)
            purpose = fields.get("purpose")
            if purpose not in PURPOSES:
                raise INVALID_VALUE(field="purpose", what="one of " + ", ".join(PURPOSES))
            upload = the_file(form, "file")
            ticket.call.raw = _described(fields, upload)
            stored = await gw.files.keep_upload(
                caller.project_id, upload_of(upload), str(purpose), reservation, ticket.call.request_id
            )
        finally:
            gw.files.quota.settle(reservation, None)  # no-op once kept
            form.discard()
        return file_object(stored), Usage({Unit.STORED_BYTES: stored.bytes}), 200

    return await _run(request, {}, work)


def _described(fields: dict[str, Any], upload: Any) -> bytes:
    return orjson.dumps(
        {**fields, "file": {"filename": upload.filename, "bytes": upload.size, "sha256": upload.sha256}}
    )


def _page(request: Request[Any, Any, Any]) -> Page:
    params = request.query_params
    limit_text = params.get("limit") or "10000"
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIST:
        raise INVALID_VALUE(field="limit", what=f"an integer from 1 to {MAX_LIST}")
    order = params.get("order") or "desc"
    if order not in ("asc", "desc"):
        raise INVALID_VALUE(field="order", what="asc or desc")
    return Page(after=params.get("after") or None, limit=int(limit_text), order=order, filters=dict(params))


def listing(items: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    """OpenAI's cursor page: the items, their first and last ids, whether more follow."""
    shown = items[:limit]
    return {
        "object": "list",
        "data": shown,
        "first_id": shown[0]["id"] if shown else None,
        "last_id": shown[-1]["id"] if shown else None,
        "has_more": len(items) > limit,
    }


@get(v1("/files"))
async def list_files(request: Request[Any, Any, Any]) -> Response[Any]:
    async def work(gw: Gateway, caller: Caller, ticket: Any) -> tuple[Any, None, int]:
        page = _page(request)
        found = await gw.files.list(caller.project_id, page)
        return listing([file_object(f) for f in found], page.limit), None, 200

    return await _run(request, {}, work)


@get(v1("/files/{file_id:str}"))
async def retrieve_file(request: Request[Any, Any, Any], file_id: str) -> Response[Any]:
    async def work(gw: Gateway, caller: Caller, ticket: Any) -> tuple[Any, None, int]:
        return file_object(await gw.files.find(file_id, caller.project_id)), None, 200

    return await _run(request, {"file_id": file_id}, work)


@delete(v1("/files/{file_id:str}"), status_code=200)
async def delete_file(request: Request[Any, Any, Any], file_id: str) -> Response[Any]:
    async def work(gw: Gateway, caller: Caller, ticket: Any) -> tuple[Any, None, int]:
        gone = await gw.files.delete(caller.project_id, file_id)
        return {"id": gone.id, "object": "file", "deleted": True}, None, 200

    return await _run(request, {"file_id": file_id}, work)


def download(gw: Gateway, stored: StoredFile, headers: dict[str, str]) -> Response[Any]:
    safe_name = stored.filename.replace('"', "").replace("\r", "").replace("\n", "")
    return stream_bytes(
        gw,
        gw.files.blobs.chunks(stored.project_id, stored.id),
        stored.content_type or "application/octet-stream",
        {**headers, "content-length": str(stored.bytes), "content-disposition": f'attachment; filename="{safe_name}"'},
    )


@get(v1("/files/{file_id:str}/content"))
async def file_content(request: Request[Any, Any, Any], file_id: str) -> Response[Any]:
    """With a key: the project's file. With `expires` and `signature` (a signed URL): any file, no key."""
    params = request.query_params
    if "signature" in params and not request.headers.get("authorization"):
        return await _signed(request, file_id, params.get("expires"), params.get("signature"))

    async def work(gw: Gateway, caller: Caller, ticket: Any) -> tuple[Any, None, int]:
        return download(gw, await gw.files.find(file_id, caller.project_id), {}), None, 200

    return await _run(request, {"file_id": file_id}, work)


async def _signed(request: Request[Any, Any, Any], file_id: str, expires: str | None, signature: str | None) -> Any:
    gw = gateway_of(request)
    gw.path.gatekeeper.admit_anonymous(client_ip(request))  # the per-IP safety net still applies
    if not gw.files.signer.valid(file_id, expires, signature, now_ms() // 1000):
        raise SIGNED_URL_INVALID()
    stored = await gw.files.store.find_file(file_id, None)
    if stored is None:
        raise SIGNED_URL_INVALID()  # deleted since it was signed: the URL no longer works
    return download(gw, stored, {"cache-control": "private, max-age=300"})


FILE_ROUTES = [upload_file, list_files, retrieve_file, delete_file, file_content]
