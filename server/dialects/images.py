"""OpenAI images: generations (JSON) and edits (multipart, its files re-streamed from disk). Metered per
image by size and quality (`per_image` on the price card); the reservation holds n images.

A `url` answer points at the gateway's own file store, never at the provider: the images are asked for as
`b64_json`, stored as files of the project, and answered with signed, expiring URLs to them (a provider
URL that comes back anyway is fetched only through the outbound URL checks, then stored the same way).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Protocol

from server.dialects import media_fields
from server.errors import UpstreamError
from server.metering import Declared
from server.money import credits_number
from server.providers.base import Provider
from server.providers.forms import Form
from server.types import Unit, Usage, image_unit

MAX_PROMPT = 4000  # the documented cap
MAX_IMAGES = 10
FORMATS = ("url", "b64_json")
QUALITIES = ("standard", "hd", "low", "medium", "high", "auto")


class ImageKeeper(Protocol):
    """Where a `url` answer's images go (the project's files) and how they are fetched when a provider
    answers with its own URL (the outbound URL checks apply)."""

    async def keep(self, data: bytes, index: int) -> str:
        """Store one image; its signed URL."""
        ...

    async def fetch(self, url: str) -> bytes: ...


def _declared_images(body: dict[str, Any]) -> tuple[int, str]:
    n = media_fields.whole(body, "n", 1, MAX_IMAGES, 1) or 1
    size = media_fields.size(body) or "1024x1024"
    quality = media_fields.choice(body, "quality", QUALITIES, None)
    media_fields.choice(body, "response_format", FORMATS, "url")
    return n, image_unit(size, quality)


@dataclass
class ImagesDialect:
    """One request's images dialect: `form` carries an edit's files; `keeper` stores a `url` answer's images."""

    keeper: ImageKeeper | None = None
    form: Form | None = None
    name: str = "images"
    capability: str = "images"

    def declare(self, body: dict[str, Any]) -> Declared:
        media_fields.text(body, "prompt", limit=MAX_PROMPT)
        n, unit = _declared_images(body)
        return Declared(output_cap=0, quantities={unit: n})

    def cap_output(self, body: dict[str, Any], cap: int) -> None:
        return None

    def delivered_chars(self, answer: dict[str, Any]) -> int:
        return 0

    @property
    def wants_url(self) -> bool:
        return self.keeper is not None

    async def unary(self, provider: Provider, model: str, body: dict[str, Any]) -> tuple[dict[str, Any], Usage]:
        if self.form is not None:
            answer = await provider.images_edit(model, self.form)
        else:
            upstream = {**body, "response_format": "b64_json"} if self.wants_url else body
            answer = await provider.images_generate(model, upstream)
        images = answer.get("data")
        if not isinstance(images, list) or not all(isinstance(item, dict) for item in images):
            raise UpstreamError(
                502,
                f"{provider.name} answered images without a data list",
                retryable=True,
                upstream_status="invalid_json",
            )
        _, unit = _declared_images(body)
        stored = await self._keep(images) if self.wants_url else 0
        quantities = {unit: len(images)}
        if stored:
            quantities[Unit.STORED_BYTES] = stored
        return answer, Usage(quantities)

    async def _keep(self, images: list[dict[str, Any]]) -> int:
        """Replace each image by a URL to its stored copy; the bytes stored."""
        assert self.keeper is not None
        total = 0
        for index, item in enumerate(images):
            data = await self._bytes(item)
            total += len(data)
            item.pop("b64_json", None)
            item["url"] = await self.keeper.keep(data, index)
        return total

    async def _bytes(self, item: dict[str, Any]) -> bytes:
        assert self.keeper is not None
        encoded = item.get("b64_json")
        if isinstance(encoded, str):
            try:
                return base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise UpstreamError(
                    502, "the provider sent an image that is not base64", retryable=True, upstream_status="invalid_json"
                ) from None
        url = item.get("url")
        if isinstance(url, str):
            return await self.keeper.fetch(url)
        raise UpstreamError(
            502, "the provider sent an image without data", retryable=True, upstream_status="invalid_json"
        )

    async def open(self, provider: Provider, model: str, body: dict[str, Any]) -> Any:
        raise NotImplementedError("images are not streamed")

    def adapter(self, body: dict[str, Any], provider: Provider) -> Any:
        raise NotImplementedError("images are not streamed")

    def logged(self, answer: dict[str, Any]) -> dict[str, Any]:
        """The answer as the request log keeps it: each image's base64 replaced by its size (the log keeps
        JSON for people and replays, not megabytes of pictures)."""
        shown = dict(answer)
        shown["data"] = [
            {**item, "b64_json": f"<{len(item['b64_json'])} characters of base64>"}
            if isinstance(item.get("b64_json"), str)
            else item
            for item in answer.get("data") or []
            if isinstance(item, dict)
        ]
        return shown

    def present(self, answer: dict[str, Any], usage: Usage, charge_micro: int) -> None:
        """The cost goes into the provider's usage object when it sent one (gpt-image models), else only into
        the `x-credits-used` header (DALL-E answers have no usage object to extend)."""
        if isinstance(answer.get("usage"), dict):
            answer["usage"]["cost"] = credits_number(charge_micro)
