"""The fast in-process tier: the real ASGI app (Litestar, the pipeline, SQLite on a temp file) driven
in this test's event loop, with providers that reach the stand-in upstream apps through httpx2's
ASGITransport. No process and no port, so a rule is tested in milliseconds; the end-to-end tier
still covers the real server, the real sockets and the official SDKs."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai

from server.api.request_id import request_id_middleware
from server.app import create_app
from server.clock import now_ms
from server.gateway import Gateway
from server.keys import ADMIN_PREFIX, display_prefix, hash_secret, new_id, new_secret
from server.providers.registry import KINDS
from server.settings import load_settings
from server.store.sqlite.store import add_admin_token
from tests.upstreams import openai_upstream

UPSTREAM_KEY = "sk-inproc-upstream-secret-0123456789"

BASE_CONFIG = """
[[providers]]
name = "mock"
kind = "mock"

[[providers]]
name = "up"
kind = "openai"
base_url = "http://upstream.invalid/v1"
api_key_env = "INPROC_UPSTREAM_KEY"
timeouts = { connect = 2, first_byte = 5, total = 20 }

[[models]]
name = "mock-chat"
targets = ["mock:mock-chat"]
price = { input = 1.0, output = 2.0 }

[[models]]
name = "gpt-4o-mini"
targets = ["up:gpt-4o-mini"]
price = { input = 1.0, output = 2.0 }
"""


@dataclass
class InProc:
    """A running in-process gateway: `client` speaks HTTP to it; `admin` carries the admin token."""

    gateway: Gateway
    client: httpx.AsyncClient
    admin: httpx.AsyncClient
    database: Path
    transport: httpx.AsyncBaseTransport

    def openai(self, key: str) -> openai.AsyncOpenAI:
        """The official SDK, speaking to this gateway in-process."""
        http = httpx.AsyncClient(transport=self.transport, base_url="http://gateway.test", timeout=30)
        return openai.AsyncOpenAI(base_url="http://gateway.test/v1", api_key=key, http_client=http, max_retries=0)

    async def project(self, name: str, **fields: Any) -> dict[str, Any]:
        created = (await self.admin.post("/admin/v1/projects", json={"name": name})).raise_for_status().json()
        if fields:
            await self.admin.patch(f"/admin/v1/projects/{name}", json=fields)
        return dict(created)

    async def key(self, project: str, **scopes: Any) -> str:
        answer = await self.admin.post("/admin/v1/keys", json={"project": project, **scopes})
        return str(answer.raise_for_status().json()["key"])

    async def chat(self, key: str, **body: Any) -> httpx.Response:
        body.setdefault("messages", [{"role": "user", "content": "hi"}])
        return await self.client.post("/v1/chat/completions", json=body, headers=auth(key))

    async def quiesce(self) -> None:
        """Wait until every queued write has committed (a settled request's last write is queued last)."""
        await self.gateway.store.writer.run(lambda conn: None)


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def _lifespan(app: Any) -> AsyncIterator[None]:
    """Drive the ASGI lifespan protocol by hand, in the current event loop."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"gateway failed to start: {started}")
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


@asynccontextmanager
async def running(
    directory: Path, config: str = BASE_CONFIG, server_extra: str = "", *, fresh: bool = True
) -> AsyncIterator[InProc]:
    """Start the gateway on `directory` with `config` (or, not `fresh`, restart it on what is there);
    openai-kind providers reach the OpenAI stand-in app."""
    os.environ["INPROC_UPSTREAM_KEY"] = UPSTREAM_KEY
    path = directory / "config.toml"
    if fresh:
        path.write_text(f'[server]\ndata_dir = "data"\n{server_extra}\n{config}')
    settings = load_settings(path)
    token = new_secret(ADMIN_PREFIX)
    settings.database_path.parent.mkdir(parents=True, exist_ok=True)
    add_admin_token(settings.database_path, new_id("adm"), hash_secret(token), display_prefix(token), now_ms())
    if fresh:
        openai_upstream.STATE.received.clear()
        openai_upstream.STATE.counters.clear()
        openai_upstream.STATE.behavior = dict(openai_upstream.STATE.defaults)
    app = create_app(settings)
    asgi = request_id_middleware(app)
    async with asynccontextmanager(_lifespan)(asgi):
        gateway: Gateway = app.state.gateway
        for provider in settings.providers:
            if provider.kind == "openai":
                old = gateway.providers[provider.name]
                await old.aclose()
                transport = httpx2.ASGITransport(app=openai_upstream.app)
                gateway.providers[provider.name] = KINDS["openai"](provider, transport=transport)
        transport = httpx.ASGITransport(app=asgi)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://gateway.test", timeout=30) as client,
            httpx.AsyncClient(
                transport=transport, base_url="http://gateway.test", headers=auth(token), timeout=30
            ) as admin,
        ):
            yield InProc(gateway, client, admin, settings.database_path, transport)


def upstream_behavior(**behavior: Any) -> None:
    """Set the in-process OpenAI stand-in's behaviour (see tests/upstreams/openai_upstream.py)."""
    openai_upstream.STATE.behavior = {**openai_upstream.STATE.defaults, **behavior}


def upstream_received() -> list[dict[str, Any]]:
    return openai_upstream.STATE.received


def upstream_counted(name: str) -> int:
    """A counter of the in-process OpenAI stand-in (e.g. `embedded_inputs`); 0 when never counted."""
    return openai_upstream.STATE.counters.get(name, 0)
