"""Video and music jobs. The seed's routes: POST /v1/videos/generations and /v1/music/generations
(`{model, prompt, seconds?, size?}` → the job), GET …/generations/{job_id} to poll it; and OpenAI's own
video API, so the SDK's `client.videos` works: POST /v1/videos (multipart or JSON), GET /v1/videos (list),
GET /v1/videos/{id}, DELETE /v1/videos/{id}, GET /v1/videos/{id}/content.

Creating a job is a call like any other (admitted, scoped and limited by the `video` class, its
worst case reserved); the job then runs in the background (server/media/jobs.py) and is billed once,
when it completes. Polls and downloads are authenticated and scoped to the key's project (another
project's job is a 404) but not counted against the class's rate limit, so SDK polling cannot starve
new jobs.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, delete, get, post

from server.api.common import admit, gateway_of, json_body, json_response, new_call, v1
from server.api.media import base_url, fields_of, receive_form
from server.api.openai.files import download, listing
from server.api.shapes import check_job
from server.capabilities import endpoint_class
from server.clock import now_ms
from server.dialects.jobs import MUSIC, VIDEO, JobDialect
from server.errors import INVALID_VALUE, JOB_NOT_FINISHED, JOB_NOT_FOUND, METERING_UNAVAILABLE, UNSUPPORTED_PARAMETER
from server.gateway import Gateway
from server.keys import bearer_token
from server.media.jobs import new_job_id
from server.store.media_protocol import COMPLETED, FAILED, Job, Page
from server.types import Caller

JOB_FIELDS = ("model", "prompt", "seconds", "size")
DEFAULT_VIDEO_SIZE = "720x1280"


def _caller(request: Request[Any, Any, Any], kind: str) -> tuple[Gateway, Caller]:
    gw = gateway_of(request)
    caller = admit(request, bearer_token(request.headers.get("authorization")))
    assert caller.key is not None
    caller.key.scopes.check_call(endpoint_class(kind), None)
    return gw, caller


async def _create(request: Request[Any, Any, Any], dialect: JobDialect, body: dict[str, Any]) -> tuple[Gateway, Job]:
    gw = gateway_of(request)
    caller = admit(request, bearer_token(request.headers.get("authorization")))
    check_job(body)
    if body.get("input_reference") is not None:
        raise UNSUPPORTED_PARAMETER(
            detail="input_reference is not supported by this gateway yet.", param="input_reference"
        )
    kept = {name: body[name] for name in JOB_FIELDS if body.get(name) is not None}
    call = new_call(request, dialect, kept)
    ticket = gw.path.start(caller, call, dialect, job=True)  # type: ignore[arg-type]
    created = now_ms()
    job = Job(
        id=new_job_id(dialect.kind),
        kind=dialect.kind,
        project_id=caller.project_id,
        key_id=caller.key_id,
        request_id=call.request_id,
        model=call.model,
        body=kept,
        created_ms=created,
        deadline_ms=created + gw.settings.jobs.timeout_s * 1000,
        client_request_id=call.client_request_id,
        seconds=dialect.seconds(kept),
        size=kept.get("size"),
        base_url=gw.settings.files.public_url or base_url(request),
    )
    try:
        await gw.jobs.create(ticket, job)
    except Exception as exc:
        gw.budgets.release(ticket.hold)
        ticket.admission.settle_tokens(0)
        ticket.end()
        raise METERING_UNAVAILABLE() from exc
    return gw, job


def _result(gw: Gateway, job: Job) -> dict[str, Any] | None:
    if job.status != COMPLETED or not job.result_file_id:
        return None
    return {"file_id": job.result_file_id, "url": gw.files.url(job.base_url, job.result_file_id)}


def job_view(gw: Gateway, job: Job) -> dict[str, Any]:
    """The seed's job shape: `id` and `job_id` (the same), status, progress, result or error."""
    return {
        "id": job.id,
        "job_id": job.id,
        "object": f"{job.kind}.generation",
        "model": job.model,
        "status": job.status,
        "progress": 100 if job.status == COMPLETED else job.progress,
        "created_at": job.created_ms // 1000,
        "completed_at": job.completed_ms // 1000 if job.completed_ms else None,
        "seconds": job.seconds,
        "size": job.size,
        "result": _result(gw, job),
        "error": dict(job.error) if job.status == FAILED and job.error else None,
    }


def video_view(job: Job) -> dict[str, Any]:
    """OpenAI's Video object."""
    error = dict(job.error) if job.status == FAILED and job.error else None
    return {
        "id": job.id,
        "object": "video",
        "model": job.model,
        "status": job.status,
        "progress": 100 if job.status == COMPLETED else job.progress,
        "created_at": job.created_ms // 1000,
        "completed_at": job.completed_ms // 1000 if job.completed_ms else None,
        "expires_at": None,
        "prompt": job.body.get("prompt"),
        "seconds": str(job.seconds or 4),
        "size": job.size or DEFAULT_VIDEO_SIZE,
        "remixed_from_video_id": None,
        "error": {"code": str(error.get("code") or "failed"), "message": str(error.get("message") or "")}
        if error
        else None,
    }


async def _find(gw: Gateway, caller: Caller, job_id: str, kind: str) -> Job:
    found = await gw.store.media.find_job(job_id, caller.project_id, kind)
    if found is None:
        raise JOB_NOT_FOUND(kind=kind, ref=job_id, param="job_id")
    return found


@post(v1("/videos/generations"), status_code=200)
async def create_video_job(request: Request[Any, Any, Any]) -> Response[Any]:
    gw, job = await _create(request, VIDEO, await json_body(request))
    return json_response(job_view(gw, job))


@get(v1("/videos/generations/{job_id:str}"))
async def get_video_job(request: Request[Any, Any, Any], job_id: str) -> Response[Any]:
    gw, caller = _caller(request, "video")
    return json_response(job_view(gw, await _find(gw, caller, job_id, "video")))


@post(v1("/music/generations"), status_code=200)
async def create_music_job(request: Request[Any, Any, Any]) -> Response[Any]:
    gw, job = await _create(request, MUSIC, await json_body(request))
    return json_response(job_view(gw, job))


@get(v1("/music/generations/{job_id:str}"))
async def get_music_job(request: Request[Any, Any, Any], job_id: str) -> Response[Any]:
    gw, caller = _caller(request, "music")
    return json_response(job_view(gw, await _find(gw, caller, job_id, "music")))


@post(v1("/videos"), status_code=200, request_max_body_size=None)
async def create_video(request: Request[Any, Any, Any]) -> Response[Any]:
    """OpenAI's create: the SDK sends multipart (fields only, unless an input_reference file is attached)."""
    if (request.headers.get("content-type") or "").startswith("multipart/"):
        gw = gateway_of(request)
        admit(request, bearer_token(request.headers.get("authorization")))  # before any byte is stored
        form = await receive_form(request, gw)
        try:
            body = fields_of(form)
            if form.files:
                body["input_reference"] = "file"
        finally:
            form.discard()
    else:
        body = await json_body(request)
    _, job = await _create(request, VIDEO, body)
    return json_response(video_view(job))


@get(v1("/videos"))
async def list_videos(request: Request[Any, Any, Any]) -> Response[Any]:
    gw, caller = _caller(request, "video")
    params = request.query_params
    limit = params.get("limit") or "20"
    if not limit.isdigit() or not 1 <= int(limit) <= 100:
        raise INVALID_VALUE(field="limit", what="an integer from 1 to 100")
    order = params.get("order") or "desc"
    if order not in ("asc", "desc"):
        raise INVALID_VALUE(field="order", what="asc or desc")
    page = Page(after=params.get("after") or None, limit=int(limit), order=order)
    found = await gw.store.media.list_jobs(caller.project_id, "video", page)
    return json_response(listing([video_view(job) for job in found], page.limit))


@get(v1("/videos/{video_id:str}"))
async def retrieve_video(request: Request[Any, Any, Any], video_id: str) -> Response[Any]:
    gw, caller = _caller(request, "video")
    job = await _find(gw, caller, video_id, "video")
    headers = {"openai-poll-after-ms": str(int(gw.settings.jobs.poll_interval_s * 1000))}
    return json_response(video_view(job), headers=headers)


@delete(v1("/videos/{video_id:str}"), status_code=200)
async def delete_video(request: Request[Any, Any, Any], video_id: str) -> Response[Any]:
    gw, caller = _caller(request, "video")
    job = await _find(gw, caller, video_id, "video")
    gone = await gw.store.media.delete_job(caller.project_id, video_id, now_ms())
    if gone is None:
        raise JOB_NOT_FINISHED(kind="video", ref=video_id, status=job.status, hint="delete it once it has finished")
    if gone.result_file_id:
        await gw.files.delete(caller.project_id, gone.result_file_id)
    return json_response({"id": video_id, "object": "video.deleted", "deleted": True})


@get(v1("/videos/{video_id:str}/content"))
async def video_content(request: Request[Any, Any, Any], video_id: str) -> Response[Any]:
    gw, caller = _caller(request, "video")
    job = await _find(gw, caller, video_id, "video")
    variant = request.query_params.get("variant") or "video"
    if variant != "video":
        raise INVALID_VALUE(field="variant", what="video (thumbnails and spritesheets are not made here)")
    if job.status != COMPLETED or not job.result_file_id:
        raise JOB_NOT_FINISHED(kind="video", ref=video_id, status=job.status, hint="poll it until it is completed")
    return download(gw, await gw.files.find(job.result_file_id, caller.project_id), {})


JOB_ROUTES = [
    create_video_job,
    get_video_job,
    create_music_job,
    get_music_job,
    create_video,
    list_videos,
    retrieve_video,
    delete_video,
    video_content,
]
