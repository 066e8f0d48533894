"""The Gemini-compatible front door: POST models/{model}:generateContent and :streamGenerateContent
under /v1beta (and /api/v1beta; /v1 too, the google-genai SDK's default version). Key in
x-goog-api-key or ?key=; answers and errors in Google's shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request, Response, post

from server.api.common import admit, answer, json_body
from server.api.error_handlers import GEMINI_ERRORS
from server.api.shapes import check_gemini
from server.api.stream_response import RelayStream
from server.dialects.gemini import GEMINI
from server.errors import NOT_FOUND

ACTIONS = ("generateContent", "streamGenerateContent")
PATHS = [f"{root}/models/{{model_id:path}}" for root in ("/v1beta", "/api/v1beta", "/v1", "/api/v1")]


async def _json_array(frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The SSE frames re-framed as one JSON array, element by element as they arrive (Google's format
    without alt=sse). Closing this closes the relay too, so a client that goes away still cancels."""
    opened = False
    try:
        async for frame in frames:
            for line in frame.splitlines():
                if line.startswith(b"data: "):
                    yield (b"\n,\r\n" if opened else b"[") + line[6:]
                    opened = True
        yield b"]" if opened else b"[]"
    finally:
        close = getattr(frames, "aclose", None)
        if close is not None:
            await close()


def _as_json_array(response: Response[Any]) -> Response[Any]:
    """Without alt=sse, streamGenerateContent answers one JSON array of the fragments, still streamed."""
    if not isinstance(response, RelayStream) or not isinstance(response.iterator, AsyncIterator):
        return response
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-type"}
    return RelayStream(
        _json_array(response.iterator),  # type: ignore[arg-type]
        write_timeout=response.write_timeout,
        media_type="application/json",
        headers=headers,
    )


@post(PATHS, status_code=200, exception_handlers=GEMINI_ERRORS)  # type: ignore[arg-type]
async def generate_content(request: Request[Any, Any, Any], model_id: str) -> Response[Any]:
    model, _, action = model_id.strip("/").removeprefix("models/").rpartition(":")
    if action not in ACTIONS or not model:
        raise NOT_FOUND(detail=f"Unknown method '{model_id}'; use :generateContent or :streamGenerateContent.")
    caller = admit(request, request.headers.get("x-goog-api-key") or request.query_params.get("key"))
    body = await json_body(request)
    check_gemini(body)
    body["model"] = model
    streaming = action == "streamGenerateContent"
    if streaming:
        body["stream"] = True
    response = await answer(request, caller, GEMINI, body)
    if streaming and request.query_params.get("alt") != "sse":
        return _as_json_array(response)
    return response
