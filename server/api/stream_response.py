"""A streamed answer that lets go of its upstream the moment its client does.

Litestar's own Stream cancels its sending task when the client disconnects but leaves the iterator to be
finalised later by the garbage collector, so the upstream call ran on. Here the relay's generator is
closed explicitly (which cancels the upstream call and bills what was delivered) as soon as the client
disconnects, between frames too: a fast upstream whose answer is already buffered is not read to the end
for a client that has left. A client that stops reading for `write_timeout` seconds (checked every half of it)
is treated as gone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Iterable
from typing import Any

from litestar import Request
from litestar.enums import MediaType
from litestar.response import Stream
from litestar.response.base import ASGIResponse
from litestar.response.streaming import ASGIStreamingResponse
from litestar.types import Receive, Send


class _ASGIRelayResponse(ASGIStreamingResponse):
    write_timeout: float = 30.0

    async def send_body(self, send: Send, receive: Receive) -> None:
        frames: Any = self.iterator
        gone = asyncio.Event()

        async def listen() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        sending_since: float | None = None  # when the send under way began (None: none is)
        loop = asyncio.get_running_loop()

        async def pump() -> None:
            nonlocal sending_since
            async for frame in frames:
                if gone.is_set():
                    return
                sending_since = loop.time()
                await send({"type": "http.response.body", "body": frame, "more_body": True})
                sending_since = None
                await asyncio.sleep(0)  # let a disconnect be noticed before the next frame is read
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        def watch() -> None:
            """Cut a client whose send has waited write_timeout (it stopped reading); checked every half
            timeout rather than a timer per frame, which cost ~8% of a stream's CPU."""
            if sending_since is not None and loop.time() - sending_since >= self.write_timeout:
                pumping.cancel()
            elif not pumping.done():
                watchdog[0] = loop.call_later(self.write_timeout / 2, watch)

        listener = asyncio.create_task(listen())
        pumping = asyncio.create_task(pump())
        watchdog = [loop.call_later(self.write_timeout / 2, watch)]
        try:
            await asyncio.wait({listener, pumping}, return_when=asyncio.FIRST_COMPLETED)
            if not pumping.done():
                pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError, OSError):
                await pumping
        finally:
            watchdog[0].cancel()
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            aclose = getattr(frames, "aclose", None)
            if aclose is not None:
                await asyncio.shield(aclose())


class RelayStream(Stream):
    """A Stream whose ASGI side is `_ASGIRelayResponse`."""

    def __init__(self, frames: AsyncGenerator[bytes, None], *, write_timeout: float, **kwargs: Any) -> None:
        super().__init__(frames, **kwargs)
        self.write_timeout = write_timeout

    def to_asgi_response(
        self,
        app: Any,
        request: Request[Any, Any, Any],
        *,
        background: Any = None,
        cookies: Iterable[Any] | None = None,
        encoded_headers: Iterable[tuple[bytes, bytes]] | None = None,
        headers: dict[str, str] | None = None,
        is_head_response: bool = False,
        media_type: MediaType | str | None = None,
        status_code: int | None = None,
        type_encoders: Any = None,
    ) -> ASGIResponse:
        response = _ASGIRelayResponse(
            background=self.background or background,
            content_length=0,
            cookies=list(self.cookies) + list(cookies or ()),
            encoded_headers=encoded_headers,
            encoding=self.encoding,
            headers={**(headers or {}), **self.headers},
            is_head_response=is_head_response,
            iterator=self.iterator,  # type: ignore[arg-type]
            media_type=str(self.media_type or media_type or MediaType.TEXT),
            status_code=self.status_code or status_code,
        )
        response.write_timeout = self.write_timeout
        return response
