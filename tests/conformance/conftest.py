"""Fixtures for the conformance tier: the OpenAPI document (parsed once per session) and one real
gateway for the whole tier, with the OpenAI, Anthropic and Gemini stand-ins and the mock behind it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conformance.cases import EMBEDDINGS_CONFIG, MEDIA_CONFIG
from tests.conformance.client import ConformanceClient
from tests.conformance.schema import OpenAPI, openapi
from tests.support.front_doors import FrontDoors, running_front_doors
from tests.upstreams.openai_upstream import UpstreamProcess


@pytest.fixture(scope="session")
def spec() -> OpenAPI:
    return openapi()


@pytest.fixture(scope="package")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrontDoors]:
    with running_front_doors(tmp_path_factory.mktemp("conformance"), EMBEDDINGS_CONFIG + MEDIA_CONFIG) as front:
        yield front


@pytest.fixture(scope="package")
def api(front: FrontDoors, spec: OpenAPI) -> Iterator[ConformanceClient]:
    """A raw HTTP client for the tier's gateway, with a key allowed every model."""
    client = ConformanceClient(front.gw.url, front.key, spec)
    yield client
    client.close()


@pytest.fixture()
def misbehave(front: FrontDoors) -> Iterator[Callable[..., None]]:
    """`misbehave(kind, **behavior)` tells the stand-in behind a provider kind to misbehave (errors, broken
    streams); every stand-in told is reset when the test ends."""
    told: list[UpstreamProcess] = []

    def tell(kind: str, **behavior: Any) -> None:
        up = front.upstream(kind)
        assert up is not None, f"no stand-in behind {kind}"
        told.append(up)
        up.set_behavior(**behavior)

    yield tell
    for up in told:
        up.clear()
