"""Admin authentication: a stored admin token (hashed) or GATEWAY_ADMIN_TOKEN from the environment."""

from __future__ import annotations

import os
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from server.errors import INVALID_ADMIN_TOKEN
from server.keys import bearer_token, is_admin
from server.settings import ADMIN_TOKEN_ENV


def require_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    gw = connection.app.state.gateway
    token = bearer_token(connection.headers.get("authorization"))
    if not is_admin(gw.snapshot, token, os.environ.get(ADMIN_TOKEN_ENV)):
        raise INVALID_ADMIN_TOKEN()
