"""GET /metrics: the gateway's Prometheus metrics (server/metrics.py), on the main port or a bind of its own.

`[metrics]` decides: `enabled = false` serves no route at all (404); `port = 0` serves it on the main port,
`port = N` on N (same host as the server) and not on the main port; either way the admin token is needed
(401 `invalid_admin_token`, the admin API's check) unless `public = true`.

The separate bind is a small threaded WSGI server (prometheus_client's exposition, in daemon threads), so a
scrape there never waits on the event loop. Failure behaviour: a port that cannot be bound stops the start-up
with the reason (the lifespan fails), never a gateway that silently serves no metrics.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler
from prometheus_client import make_wsgi_app

from server.api.admin.guard import require_admin
from server.api.common import gateway_of
from server.errors import INVALID_ADMIN_TOKEN, NOT_FOUND
from server.gateway import Gateway
from server.keys import bearer_token, is_admin
from server.settings import ADMIN_TOKEN_ENV, MetricsSettings

PATH = "/metrics"


def metrics_routes(settings: MetricsSettings) -> list[HTTPRouteHandler]:
    """The main port's /metrics route, or none (disabled, or served on a port of its own)."""
    if not settings.enabled or settings.port:
        return []

    @get(PATH, guards=[] if settings.public else [require_admin], include_in_schema=False)
    async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
        body, content_type = gateway_of(request).metrics.exposition(request.headers.get("accept"))
        return Response(content=body, headers={"content-type": content_type})

    return [metrics]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    timeout = 10  # seconds a connection may stay silent (a slow or idle client does not hold a thread forever)

    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not log events
        pass


class MetricsListener:
    """/metrics on its own bind, in a thread; `close()` stops it."""

    def __init__(self, host: str, port: int, gateway: Gateway, public: bool) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("MetricsServer", (_Server,), {"address_family": family})
        allowed = _anyone if public else _admin_check(gateway)
        app = _guarded(make_wsgi_app(gateway.metrics.registry), allowed)
        self._server = make_server(host, port, app, server_class=server_class, handler_class=_Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, name="gateway-metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def _anyone(_authorization: str | None) -> bool:
    return True


def _admin_check(gateway: Gateway) -> Callable[[str | None], bool]:
    def allowed(authorization: str | None) -> bool:
        return is_admin(gateway.snapshot, bearer_token(authorization), os.environ.get(ADMIN_TOKEN_ENV))

    return allowed


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _guarded(app: WSGIApp, allowed: Callable[[str | None], bool]) -> WSGIApp:
    """Only /metrics, and only for an allowed Authorization header; refusals in OpenAI's error shape."""

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH:
            error = NOT_FOUND(detail=f"Unknown route: {environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}")
        elif not allowed(environ.get("HTTP_AUTHORIZATION")):
            error = INVALID_ADMIN_TOKEN()
        else:
            return app(environ, start_response)
        body = orjson.dumps(error.openai_body())
        start_response(f"{error.status} {HTTPStatus(error.status).phrase}", [("Content-Type", "application/json")])
        return [body]

    return guarded
