"""Where the images of a `url` answer go: stored as files of the project (purpose `assistants_output`),
answered with signed URLs on the gateway. A provider that answers with its own URL is fetched only under
the outbound URL rules (server/media/fetch.py)."""

from __future__ import annotations

from dataclasses import dataclass

from server.errors import UpstreamError
from server.files.service import GENERATED, Files, Meta
from server.media.fetch import Fetcher, FetchRefused

SIGNATURES = ((b"\x89PNG", "image/png", "png"), (b"\xff\xd8\xff", "image/jpeg", "jpg"), (b"RIFF", "image/webp", "webp"))


def sniff(data: bytes) -> tuple[str, str]:
    """(content type, extension) of an image from its first bytes; PNG when unknown."""
    for magic, content_type, extension in SIGNATURES:
        if data.startswith(magic):
            return content_type, extension
    return "image/png", "png"


@dataclass
class ProjectImages:
    files: Files
    fetcher: Fetcher
    project_id: str
    base_url: str
    request_id: str

    async def keep(self, data: bytes, index: int) -> str:
        content_type, extension = sniff(data)
        name = f"image-{self.request_id[:8]}-{index}.{extension}"
        meta = Meta(name, content_type, GENERATED, "image", self.request_id)
        stored = await self.files.add_bytes(self.project_id, data, meta)
        return self.files.url(self.base_url, stored.id)

    async def fetch(self, url: str) -> bytes:
        try:
            return (await self.fetcher.fetch(url)).data
        except FetchRefused as exc:
            raise UpstreamError(
                502, f"the provider's image URL was not fetched: {exc}", retryable=False, upstream_status="url_refused"
            ) from None
