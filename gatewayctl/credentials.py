"""Where the CLI finds the server and its admin token: flag → environment → config / keyring."""

from __future__ import annotations

import os
from pathlib import Path

from gatewayctl.errors import CliError

KEYRING_SERVICE = "gatewayctl"
DEFAULT_URL = "http://127.0.0.1:8080"


def server_url(flag: str | None, config: Path | None = None) -> str:
    if flag:
        return flag.rstrip("/")
    if os.environ.get("GATEWAY_URL"):
        return os.environ["GATEWAY_URL"].rstrip("/")
    from server.settings import ConfigError, load_settings

    path = config or (Path(os.environ["GATEWAY_CONFIG"]) if os.environ.get("GATEWAY_CONFIG") else Path("config.toml"))
    if path.is_file():
        try:
            settings = load_settings(path)
        except ConfigError as exc:
            raise CliError(str(exc), 2) from None
        host = "127.0.0.1" if settings.server.host in ("0.0.0.0", "::") else settings.server.host
        return f"http://{host}:{settings.server.port}"
    return DEFAULT_URL


def keyring_problem() -> str | None:
    """None when a usable keyring backend exists, else a one-line explanation."""
    try:
        import keyring
        from keyring.backends import fail

        backend = keyring.get_keyring()
    except Exception as exc:  # keyring can fail to import its backends on headless machines
        return f"no usable keyring backend ({type(exc).__name__})"
    if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 1) <= 0:
        kind = type(backend)
        return f"no usable keyring backend ({kind.__module__}.{kind.__name__})"
    return None


def store_token(url: str, token: str) -> bool:
    if keyring_problem():
        return False
    import keyring

    try:
        keyring.set_password(KEYRING_SERVICE, url, token)
    except Exception:
        return False
    return True


def admin_token(flag: str | None, url: str) -> str:
    if flag:
        return flag
    if os.environ.get("GATEWAY_ADMIN_TOKEN"):
        return os.environ["GATEWAY_ADMIN_TOKEN"]
    problem = keyring_problem()
    if problem is None:
        import keyring

        try:
            token = keyring.get_password(KEYRING_SERVICE, url)
        except Exception:
            token = None
        if token:
            return token
        problem = f"no admin token for {url} in the keyring"
    raise CliError(f"{problem}: pass --token, or set GATEWAY_ADMIN_TOKEN (printed by `gatewayctl init`).")
