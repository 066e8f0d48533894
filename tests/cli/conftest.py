"""One gateway process shared by the CLI tests that need a server (the package's `gw`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.gateway import MOCK_CONFIG, GatewayProcess


@pytest.fixture(scope="package")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path_factory.mktemp("cli"), MOCK_CONFIG).start()
    yield process
    process.stop()
