"""Media references in chat and Responses bodies, resolved before the call is admitted: a `file_id` becomes
the file's bytes (ownership checked: another project's file is a 404, as in the Files API), and, for a
model whose targets include a provider that needs images as bytes (Gemini), a remote image URL is fetched
under the outbound URL rules and sent inline. The translators then give each provider its own shape:
inline data for OpenAI-compatible upstreams, image and document blocks for Anthropic, inlineData for
Gemini.

What is added counts toward the call's input bound (its reservation), so inlined bytes cannot overrun it.
Failure: 404 `file_not_found`; 400 `invalid_file` (too large to send inline); 400 `url_not_fetched`.
"""

from __future__ import annotations

import base64
import mimetypes
from typing import Any

from server.errors import INVALID_FILE, URL_NOT_FETCHED
from server.files.service import Files
from server.media.fetch import Fetcher, FetchRefused
from server.store.media_protocol import StoredFile


def _mime(stored: StoredFile) -> str:
    if stored.content_type and stored.content_type != "application/octet-stream":
        return stored.content_type.split(";", 1)[0].strip()
    return mimetypes.guess_type(stored.filename)[0] or "application/octet-stream"


def _parts(container: Any) -> list[dict[str, Any]]:
    content = container.get("content") if isinstance(container, dict) else None
    return [part for part in content if isinstance(part, dict)] if isinstance(content, list) else []


class MediaRefs:
    def __init__(self, files: Files, fetcher: Fetcher, cap_bytes: int) -> None:
        self._files = files
        self._fetcher = fetcher
        self._cap = cap_bytes

    async def _data_url(self, project_id: str, file_id: Any, param: str) -> tuple[str, StoredFile]:
        if not isinstance(file_id, str) or not file_id:
            raise INVALID_FILE(detail=f"'{param}' must be a file id such as file-abc123.", param=param)
        stored = await self._files.find(file_id, project_id)
        if stored.bytes > self._cap:
            detail = f"File {file_id} ({stored.bytes} bytes) is too large to send to a model (at most {self._cap})."
            raise INVALID_FILE(detail=detail, param=param)
        data = await self._files.blobs.read(stored.project_id, stored.id)
        return f"data:{_mime(stored)};base64,{base64.b64encode(data).decode()}", stored

    async def _inline(self, url: Any, param: str) -> str | None:
        """A remote http(s) image fetched as a data URL; None when the URL is not remote."""
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return None
        try:
            fetched = await self._fetcher.fetch(url)
        except FetchRefused as exc:
            raise URL_NOT_FETCHED(detail=str(exc), param=param) from None
        mime = fetched.content_type.split(";", 1)[0].strip() or mimetypes.guess_type(url)[0] or "image/png"
        if not mime.startswith("image/"):
            raise URL_NOT_FETCHED(detail=f"{url[:120]} is not an image ({mime})", param=param)
        return f"data:{mime};base64,{base64.b64encode(fetched.data).decode()}"

    async def chat(self, project_id: str, body: dict[str, Any], inline_remote: bool) -> int:
        """Resolve a chat body in place; returns the bytes added."""
        added = 0
        messages = body.get("messages")
        for m, message in enumerate(messages if isinstance(messages, list) else []):
            for p, part in enumerate(_parts(message)):
                param = f"messages.{m}.content.{p}"
                spec = part.get("file")
                if part.get("type") == "file" and isinstance(spec, dict) and spec.get("file_id") is not None:
                    url, stored = await self._data_url(project_id, spec["file_id"], f"{param}.file.file_id")
                    part.clear()
                    if url.startswith("data:image/"):
                        part.update({"type": "image_url", "image_url": {"url": url}})
                    else:
                        part.update({"type": "file", "file": {"filename": stored.filename, "file_data": url}})
                    added += len(url)
                elif part.get("type") == "image_url" and inline_remote and isinstance(part.get("image_url"), dict):
                    inline = await self._inline(part["image_url"].get("url"), f"{param}.image_url.url")
                    if inline is not None:
                        part["image_url"]["url"] = inline
                        added += len(inline)
        return added

    async def responses(self, project_id: str, body: dict[str, Any], inline_remote: bool) -> int:
        """Resolve a Responses body (`input_file` / `input_image` with a file id) in place; the bytes added."""
        added = 0
        items = body.get("input")
        for i, item in enumerate(items if isinstance(items, list) else []):
            for p, part in enumerate(_parts(item)):
                param = f"input.{i}.content.{p}"
                kind = part.get("type")
                if kind in ("input_file", "input_image") and part.get("file_id") is not None:
                    url, stored = await self._data_url(project_id, part.pop("file_id"), f"{param}.file_id")
                    if kind == "input_file":
                        part.update({"filename": stored.filename, "file_data": url})
                    else:
                        part["image_url"] = url
                    added += len(url)
                elif kind == "input_image" and inline_remote:
                    inline = await self._inline(part.get("image_url"), f"{param}.image_url")
                    if inline is not None:
                        part["image_url"] = inline
                        added += len(inline)
        return added
