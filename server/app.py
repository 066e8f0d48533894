"""create_app(settings): routes, the exception-handler map, and a lifespan owning every resource."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.types import ASGIApp

from server.api.access_log import access_log_middleware
from server.api.admin.routes import admin_router
from server.api.anthropic import messages
from server.api.error_handlers import OPENAI_ERRORS
from server.api.gemini import generate_content
from server.api.health import healthz, readyz
from server.api.metrics import MetricsListener, metrics_routes
from server.api.openai.audio import AUDIO_ROUTES
from server.api.openai.chat import chat_completions
from server.api.openai.embeddings import embeddings
from server.api.openai.files import FILE_ROUTES
from server.api.openai.images import IMAGE_ROUTES
from server.api.openai.models import list_models, retrieve_model
from server.api.openai.realtime import realtime
from server.api.openai.responses import responses
from server.api.openai.usage import usage
from server.api.openai.videos import JOB_ROUTES
from server.api.openai.webhooks import WEBHOOK_ROUTES
from server.api.request_id import request_id_middleware
from server.api.stripe_webhook import stripe_webhook
from server.gateway import Gateway
from server.key_activity import LastUsedFlusher
from server.maintenance import Maintenance
from server.settings import Settings


def create_asgi(settings: Settings, app: Litestar | None = None) -> ASGIApp:
    """The served app (`app`, else a new one): the request-id layer wraps everything, unknown routes
    included, and the access log (unless `[server] access_log = false`) wraps that, so its line carries
    the request id."""
    served = request_id_middleware(app or create_app(settings))
    return access_log_middleware(served) if settings.server.access_log else served


def create_app(settings: Settings, host: str | None = None) -> Litestar:
    """The app for `settings`; `host` is where the server listens (`serve --host`), for a metrics port."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        gateway = await Gateway.start(settings)
        app.state.gateway = gateway
        metrics = settings.metrics
        listener = None
        if metrics.enabled and metrics.port:
            try:
                listener = MetricsListener(host or settings.server.host, metrics.port, gateway, metrics.public)
            except OSError:
                await gateway.close()
                raise
        last_used = LastUsedFlusher(gateway.snapshot, gateway.store.touch_keys)
        last_used.start()
        maintenance = Maintenance(gateway)
        maintenance.start()
        gateway.webhooks.start()  # the delivery worker: pending deliveries are in the store, so it resumes
        gateway.jobs.start()  # video and music jobs: active ones are in the store, so they resume
        # Long-lived startup objects leave the GC's view, and young collections run less often:
        # per-request garbage is short-lived, and full collections were the p99 latency spikes.
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
        try:
            yield
        finally:
            if listener is not None:
                listener.close()
            await maintenance.stop()
            await gateway.jobs.stop()
            await gateway.webhooks.stop()
            await last_used.stop()
            await gateway.close()

    return Litestar(
        route_handlers=[
            healthz,
            readyz,
            list_models,
            retrieve_model,
            chat_completions,
            embeddings,
            responses,
            realtime,
            messages,
            generate_content,
            usage,
            stripe_webhook,
            *WEBHOOK_ROUTES,
            *FILE_ROUTES,
            *IMAGE_ROUTES,
            *AUDIO_ROUTES,
            *JOB_ROUTES,
            admin_router,
            *metrics_routes(settings.metrics),
        ],
        lifespan=[lifespan],
        exception_handlers=OPENAI_ERRORS,  # type: ignore[arg-type]
        request_max_body_size=settings.server.max_body_bytes,
        openapi_config=None,
        debug=False,
    )
