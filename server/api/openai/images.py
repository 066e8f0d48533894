"""POST /v1/images/generations (JSON) and /v1/images/edits (multipart: image or image[], mask). `url`
answers point at the project's own stored files (signed, expiring URLs), `b64_json` answers carry the
bytes; either way the call is admitted, limited (`images` class), reserved per image and logged."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post

from server.api.common import admit, answer, gateway_of, json_body, v1
from server.api.media import base_url, fields_of, form_call, provider_form, receive_form, request_id
from server.api.shapes import check_images
from server.dialects.images import ImagesDialect
from server.errors import MISSING_FIELD
from server.gateway import Gateway
from server.keys import bearer_token
from server.media.keeper import ProjectImages
from server.types import Caller


def _keeper(request: Request[Any, Any, Any], gw: Gateway, caller: Caller, fmt: Any) -> ProjectImages | None:
    """For a `url` answer (the default): where its images go, once the project has room for them."""
    if fmt not in (None, "url"):
        return None
    assert caller.project is not None
    gw.files.quota.check(caller.project_id, gw.files.limit(caller.project.plan), 1)
    rid = request_id(request) or ""
    return ProjectImages(gw.files, gw.fetcher, caller.project_id, base_url(request), rid)


@post(v1("/images/generations"), status_code=200)
async def images_generations(request: Request[Any, Any, Any]) -> Response[Any]:
    gw = gateway_of(request)
    caller = admit(request, bearer_token(request.headers.get("authorization")))
    body = await json_body(request)
    check_images(body)
    dialect = ImagesDialect(keeper=_keeper(request, gw, caller, body.get("response_format")))
    return await answer(request, caller, dialect, body)  # type: ignore[arg-type]


@post(v1("/images/edits"), status_code=200, request_max_body_size=None)
async def images_edits(request: Request[Any, Any, Any]) -> Response[Any]:
    gw = gateway_of(request)
    caller = admit(request, bearer_token(request.headers.get("authorization")))
    form = await receive_form(request, gw)
    try:
        body = fields_of(form)
        keeper = _keeper(request, gw, caller, body.get("response_format"))
        sent = provider_form(form, skip=("response_format",))
        if keeper is not None:
            sent.fields.append(("response_format", "b64_json"))  # stored by the gateway, answered as URLs
        elif body.get("response_format"):
            sent.fields.append(("response_format", str(body["response_format"])))
        if not any(f.field in ("image", "image[]") for f in form.files):
            raise MISSING_FIELD(field="image")
        dialect = ImagesDialect(keeper=keeper, form=sent)
        call = form_call(request, dialect, body, form.files)  # type: ignore[arg-type]
        ticket = gw.path.start(caller, call, dialect)  # type: ignore[arg-type]
        served = await gw.path.serve_unary(ticket)
        return Response(content=served.content, media_type=served.media_type, headers=served.headers)
    finally:
        form.discard()


IMAGE_ROUTES = [images_generations, images_edits]
