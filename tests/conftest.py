"""Shared fixtures: a stand-in OpenAI upstream process and gateway processes on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import MOCK_CONFIG, GatewayProcess
from tests.support.services import Postgres, Redis, start_postgres, start_redis
from tests.upstreams.openai_upstream import UpstreamProcess, start_upstream_process

UPSTREAM_KEY = "sk-upstream-secret-123"


def upstream_config(upstream: UpstreamProcess, first_byte: float = 5.0) -> str:
    return (
        MOCK_CONFIG
        + f"""
[[providers]]
name = "up"
kind = "openai"
base_url = "{upstream.base_url}"
api_key_env = "TEST_UPSTREAM_KEY"
timeouts = {{ connect = 2, first_byte = {first_byte}, total = 20 }}

[[models]]
name = "gpt-4o-mini"
targets = ["up:gpt-4o-mini-2024-07-18"]
price = {{ input = 0.15, output = 0.60, cached_input = 0.075 }}

[[models]]
name = "text-embedding-3-small"
targets = ["up:text-embedding-3-small"]
price = {{ input = 0.02 }}
capabilities = ["embeddings"]

[webhooks]
allow_http = true  # so that loopback webhook URLs are refused for their address, the allowlist being empty
"""
    )


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Redis]:
    """One real redis-server (Debian's package) for the whole session; tests that need a clean one flush it."""
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def upstream() -> Iterator[UpstreamProcess]:
    up = start_upstream_process()
    yield up
    up.stop()


@pytest.fixture(scope="session")
def gateway(upstream: UpstreamProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One gateway for the read-mostly end-to-end tests (mock and upstream-backed models)."""
    directory: Path = tmp_path_factory.mktemp("gateway")
    gw = GatewayProcess(directory, upstream_config(upstream), {"TEST_UPSTREAM_KEY": UPSTREAM_KEY}).start()
    yield gw
    gw.stop()


@pytest.fixture()
def fresh_upstream(upstream: UpstreamProcess) -> Iterator[UpstreamProcess]:
    upstream.clear()
    yield upstream
    upstream.clear()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One real PostgreSQL server for the whole run (tests take a fresh database each: create_database)."""
    server = start_postgres()
    yield server
    server.stop()
