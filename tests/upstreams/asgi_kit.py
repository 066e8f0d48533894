"""Plumbing shared by the stand-in upstreams (OpenAI, Anthropic, Gemini, Stripe).

Each stand-in is a small hand-written ASGI app under uvicorn. What they have in common lives here:
the error base class, the process-wide recordings, counters and behaviour (with ``times`` counting down),
reading and recording requests, JSON and streamed responses, the test-only control routes (``GET /_health``,
``GET /_received``, ``GET /_counters``, ``POST /_reset``, ``POST /_behavior``), the uvicorn ``main()`` and the
subprocess handle plus launch loop that tests use to start any of them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import hashlib
import json
import logging
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = tuple[tuple[bytes, bytes], ...]
App = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODULE = "tests.upstreams.openai_upstream"  # what start_upstream_process launches unless told otherwise
SSE_HEADERS: Headers = ((b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"))


class StandInError(Exception):
    """Base of the stand-ins' errors: raised by handlers, answered with ``status`` and a provider-shaped ``body()``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message

    def body(self) -> dict[str, Any]:
        raise NotImplementedError


class FieldError(StandInError):
    """An error carrying ``param``, ``code`` and ``type`` as OpenAI and Stripe errors do."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        type_: str = "invalid_request_error",
    ) -> None:
        super().__init__(status, message)
        self.param, self.code, self.type = param, code, type_


class State:
    """Process-wide recordings and behaviour; one event loop, so no locking is needed.

    Subclasses set ``defaults``: the behaviour keys a stand-in accepts and their resting values.
    ``streams`` counts streamed answers that completed and those the caller abandoned (it closed the
    connection mid-stream), with how long each abandoned one ran after the caller left. ``counters`` are
    what a stand-in counts for tests (the OpenAI one: ``embedded_inputs``, every input item it embedded)."""

    defaults: dict[str, Any] = {"status": None, "delay_ms": 0, "times": None}

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.behavior: dict[str, Any] = dict(self.defaults)
        self.streams: dict[str, Any] = {"completed": 0, "abandoned": 0}
        self.counters: dict[str, int] = {}

    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + amount

    def take_behavior(self) -> dict[str, Any]:
        """Return the behaviour for this request, counting down ``times`` and reverting at zero."""
        current = dict(self.behavior)
        if current["times"] is not None:
            self.behavior["times"] -= 1
            if self.behavior["times"] <= 0:
                self.behavior = dict(self.defaults)
        return current

    async def apply_behavior(self, error: Callable[[int], Exception]) -> dict[str, Any]:
        """Take this request's behaviour, wait its ``delay_ms``, and raise ``error(status)`` if it sets one."""
        behavior = self.take_behavior()
        if behavior["delay_ms"]:
            await asyncio.sleep(behavior["delay_ms"] / 1000)
        if behavior["status"]:
            raise error(int(behavior["status"]))
        return behavior


@dataclass
class Request:
    """One request as the stand-ins see it: the raw text, its JSON (``parsed`` is False if it was not JSON),
    and its bytes (``raw``: a multipart body is parsed from them)."""

    method: str
    path: str
    query: str
    text: str
    body: Any
    parsed: bool
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes = b""
    form: dict[str, Any] | None = None  # a multipart body's fields and files (see openai_media.parse_form)

    def recording(self) -> dict[str, Any]:
        """The entry ``GET /_received`` lists for this request."""
        recorded = {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "json": self.body,
            "body": self.text if self.form is None else "",
        }
        if self.form is not None:
            recorded["form"] = self.form
        return recorded


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def read_text(receive: Receive) -> str:
    return (await read_body(receive)).decode("utf-8", errors="replace")


def parse_form(content_type: str, raw: bytes) -> dict[str, Any]:
    """A multipart/form-data body as ``{"fields": {name: [values]}, "files": [{field, filename, content_type,
    size, sha256, data}]}`` (a stand-in holds its small bodies whole; the gateway must not)."""
    boundary = content_type.split("boundary=", 1)[-1].strip().strip('"').encode()
    form: dict[str, Any] = {"fields": {}, "files": []}
    for part in raw.split(b"--" + boundary)[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.partition(b"\r\n\r\n")
        data = data[:-2] if data.endswith(b"\r\n") else data
        lines = head.decode("utf-8", errors="replace").strip().split("\r\n")
        info = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        params = dict(
            (k.strip(), v.strip().strip('"'))
            for k, _, v in (p.partition("=") for p in info["content-disposition"].split(";")[1:])
        )
        if "filename" in params:
            form["files"].append(
                {
                    "field": params["name"],
                    "filename": params["filename"],
                    "content_type": info.get("content-type", ""),
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            )
        else:
            form["fields"].setdefault(params["name"], []).append(data.decode("utf-8", errors="replace"))
    return form


def parse_json(text: str) -> tuple[Any, bool]:
    """(body, parsed): an empty body is ``None`` and parsed; text that is not JSON is ``None`` and not parsed."""
    try:
        return (json.loads(text) if text.strip() else None), True
    except ValueError:
        return None, False


def header_dict(scope: dict[str, Any], *, merge: bool = True) -> dict[str, str]:
    """Lower-cased request headers; a repeated header is joined with ", " (or, without ``merge``, the last wins)."""
    headers: dict[str, str] = {}
    for k, v in scope["headers"]:
        key, value = k.decode("latin-1").lower(), v.decode("latin-1")
        headers[key] = f"{headers[key]}, {value}" if merge and key in headers else value
    return headers


async def send_json(
    send: Send,
    status: int,
    payload: Any,
    headers: Iterable[tuple[bytes, bytes]] = (),
    *,
    content_type: bytes = b"application/json",
    indent: int | None = None,
) -> None:
    """A whole JSON response: content type and length first, then ``headers``."""
    data = json.dumps(payload, indent=indent).encode()
    start = [(b"content-type", content_type), (b"content-length", str(len(data)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": data})


_RECEIVE: contextvars.ContextVar[Receive | None] = contextvars.ContextVar("stand_in_receive", default=None)
_STATE: contextvars.ContextVar[State | None] = contextvars.ContextVar("stand_in_state", default=None)


async def stream(
    send: Send,
    pieces: list[bytes],
    headers: Iterable[tuple[bytes, bytes]],
    *,
    fail_after: int | None = None,
    chunk_delay_ms: float = 0,
    tail: bytes = b"",
) -> None:
    """A 200 streamed piece by piece, ``chunk_delay_ms`` apart, then ``tail`` (if any) and the end.

    With ``fail_after`` set, only that many pieces go out and the handler returns mid-body, which makes
    uvicorn close the socket: a broken stream, with no tail. A caller that closes the connection
    mid-stream stops it (counted in ``State.streams['abandoned']``)."""
    receive, state = _RECEIVE.get(), _STATE.get()
    left = asyncio.Event()

    async def watch() -> None:
        while receive is not None and (await receive())["type"] != "http.disconnect":
            pass
        left.set()

    watcher = asyncio.create_task(watch())
    try:
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        for i, piece in enumerate(pieces):
            if fail_after is not None and i >= fail_after:
                return
            if i and chunk_delay_ms:
                await asyncio.sleep(chunk_delay_ms / 1000)
            if left.is_set():
                if state is not None:
                    state.streams["abandoned"] += 1
                return
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        if tail:
            await send({"type": "http.response.body", "body": tail, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        if state is not None:
            state.streams["completed"] += 1
    finally:
        watcher.cancel()


async def control_route(
    state: State,
    method: str,
    path: str,
    body: Any,
    reply: Callable[[int, Any], Awaitable[None]],
    invalid: Callable[[str], Exception],
) -> bool:
    """Answer a shared test-only route (never recorded, never authenticated); False if ``path`` is not one."""
    if (method, path) == ("GET", "/_health"):
        await reply(200, {"ok": True})
    elif (method, path) == ("GET", "/_received"):
        await reply(200, state.received)
    elif (method, path) == ("GET", "/_streams"):
        await reply(200, state.streams)
    elif (method, path) == ("GET", "/_counters"):
        await reply(200, state.counters)
    elif (method, path) == ("POST", "/_reset"):
        state.received.clear()
        state.behavior = dict(state.defaults)
        state.streams = {"completed": 0, "abandoned": 0}
        state.counters.clear()
        await reply(200, {"ok": True})
    elif (method, path) == ("POST", "/_behavior"):
        if not isinstance(body, dict) or set(body) - set(state.defaults):
            raise invalid(f"behavior must be an object with keys from {sorted(state.defaults)}")
        state.behavior = {**state.defaults, **body}
        await reply(200, state.behavior)
    else:
        return False
    return True


async def json_app(
    scope: dict[str, Any],
    receive: Receive,
    send: Send,
    *,
    state: State,
    control: Callable[[Request, Send], Awaitable[None]],
    handle: Callable[[Request, Send], Awaitable[None]],
    reply_error: Callable[[Send, Any], Awaitable[None]],
    merge_headers: bool = True,
) -> None:
    """The ASGI skeleton of the JSON stand-ins: read and parse the body, hand ``/_*`` routes to ``control``,
    record everything else, then let ``handle`` answer; a ``StandInError`` becomes ``reply_error``."""
    if scope["type"] != "http":
        return
    raw = await read_body(receive)
    text = raw.decode("utf-8", errors="replace")
    headers = header_dict(scope, merge=merge_headers)
    multipart = headers.get("content-type", "").startswith("multipart/form-data")
    body, parsed = (None, True) if multipart else parse_json(text)
    request = Request(scope["method"], scope["path"], scope["query_string"].decode(), text, body, parsed, raw=raw)
    if multipart:
        request.form = parse_form(headers["content-type"], raw)
    try:
        if request.path.startswith("/_"):
            return await control(request, send)
        request.headers = headers
        state.received.append(request.recording())
        _RECEIVE.set(receive)
        _STATE.set(state)
        await handle(request, send)
    except StandInError as err:
        await reply_error(send, err)


def main(app: App, doc: str | None, argv: list[str] | None = None, *, quiet_dropped: bool = True) -> None:
    """CLI entry of a stand-in; a fixed port is required because the caller must know it before we start."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.port <= 0:
        parser.error("--port must be a real port, not 0")
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", lifespan="off", access_log=False)
    if quiet_dropped:  # broken streams drop connections on purpose; keep uvicorn from logging that as an error
        logging.getLogger("uvicorn.error").addFilter(lambda r: "without completing" not in r.getMessage())
    uvicorn.Server(config).run()


class UpstreamProcess:
    """Handle on a stand-in running as a real subprocess, with small control-route helpers.

    ``base_url`` is ``root_url`` plus ``base_path``, the prefix a provider config (or SDK) points at."""

    base_path = "/v1"

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.proc, self.port, self.log_path = proc, port, log_path
        self.root_url = f"http://127.0.0.1:{port}"
        self.base_url = f"{self.root_url}{self.base_path}"

    def received(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.root_url}/_received").raise_for_status().json()

    def streams(self) -> dict[str, Any]:
        """Streamed answers completed and abandoned by the caller (see State.streams)."""
        return httpx.get(f"{self.root_url}/_streams").raise_for_status().json()

    def counters(self) -> dict[str, int]:
        """What the stand-in counted (see State.counters); a counter never touched is absent."""
        return httpx.get(f"{self.root_url}/_counters").raise_for_status().json()

    def clear(self) -> None:
        httpx.post(f"{self.root_url}/_reset").raise_for_status()

    def sent(self) -> Any:
        """What a stand-in reports it sent (the realtime one: audio deltas per response)."""
        return httpx.get(f"{self.root_url}/_sent").raise_for_status().json()

    def set_behavior(self, **kw: Any) -> None:
        httpx.post(f"{self.root_url}/_behavior", json=kw).raise_for_status()

    def stop(self) -> None:
        """Terminate our own child by PID; kill it if it does not exit promptly; drop its log."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log_path.unlink(missing_ok=True)


P = TypeVar("P", bound=UpstreamProcess)


def start_upstream_process(
    port: int | None = None,
    timeout: float = 15.0,
    *,
    module: str = DEFAULT_MODULE,
    process_class: type[P] = UpstreamProcess,  # type: ignore[assignment]
) -> P:
    """Launch a stand-in (the OpenAI one unless `module` names another) with ``python -m`` from the repo root
    and wait until /_health answers; every stand-in shares this launch loop and its handle type.
    With no port given, a free one is picked (and retried if another process grabs it first)."""
    label = module.rsplit(".", 1)[-1]
    log_tail = ""
    for _attempt in range(3):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            chosen = port or int(sock.getsockname()[1])
        with tempfile.NamedTemporaryFile(prefix=f"{label}-", suffix=".log", delete=False) as out:
            cmd = [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(chosen)]
            proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
        up = process_class(proc, chosen, Path(out.name))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{up.root_url}/_health", timeout=1).status_code == 200:
                    return up
            except httpx.TransportError:
                time.sleep(0.05)
        log_tail = up.log_path.read_text(errors="replace")[-2000:]
        up.stop()
        if port is not None:
            break
    raise RuntimeError(f"{label} stand-in did not start; log:\n{log_tail}")
