"""Fixtures for the front-door end-to-end tests: one gateway per test module, with a provider of each kind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.front_doors import SECRETS, FrontDoors, config
from tests.support.gateway import GatewayProcess
from tests.upstreams.anthropic_upstream import start_anthropic_process
from tests.upstreams.gemini_upstream import start_gemini_upstream
from tests.upstreams.openai_upstream import start_upstream_process


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrontDoors]:
    """The OpenAI, Anthropic and Gemini stand-ins and the mock behind one real gateway process."""
    openai_up = start_upstream_process()
    anthropic_up = start_anthropic_process()
    gemini_up = start_gemini_upstream()
    gw: GatewayProcess | None = None
    try:
        gw = GatewayProcess(tmp_path_factory.mktemp("front-doors"), config(openai_up, anthropic_up, gemini_up), SECRETS)
        gw.start()
        yield FrontDoors(gw, openai_up, anthropic_up, gemini_up, gw.new_key("front-doors"))
    finally:
        if gw is not None:
            gw.stop()
        for up in (openai_up, anthropic_up, gemini_up):
            up.stop()


@pytest.fixture()
def fd(front: FrontDoors) -> FrontDoors:
    """`front`, with every stand-in's recordings and behaviour reset for this test."""
    front.clear()
    return front
