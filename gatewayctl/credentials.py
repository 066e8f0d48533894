"""Where the CLI finds the server and its admin token: flag → environment → config / keyring."""

from __future__ import annotations

import os
from pathlib import Path

from gatewayctl.errors import CliError

KEYRING_SERVICE = "gatewayctl"
DEFAULT_URL = "http://127.0.0.1:8080"
CONFIG_ENV = "GATEWAY_CONFIG"


def config_path(flag: Path | None = None) -> Path:
    """--config, else GATEWAY_CONFIG, else ./config.toml (which may not exist)."""
    if flag:
        return flag
    return Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else Path("config.toml")


def server_url(flag: str | None, config: Path | None = None) -> str:
    """--url, else GATEWAY_URL, else host and port from config.toml (read with tomllib alone: the full
    settings model costs a noticeable start-up time and the CLI needs two keys), else the default."""
    if flag:
        return flag.rstrip("/")
    if os.environ.get("GATEWAY_URL"):
        return os.environ["GATEWAY_URL"].rstrip("/")
    path = config_path(config)
    if not path.is_file():
        return DEFAULT_URL
    import tomllib

    try:
        server = tomllib.loads(path.read_text()).get("server") or {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CliError(f"{path}: cannot read the config: {exc}", 2) from None
    host = str(os.environ.get("GATEWAY_SERVER__HOST") or server.get("host") or "127.0.0.1")
    port = os.environ.get("GATEWAY_SERVER__PORT") or server.get("port") or 8080
    if not str(port).isdigit() or not 1 <= int(port) <= 65535:
        raise CliError(f"invalid config: server.port: {port!r} is not a port number", 2)
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{int(port)}"


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
