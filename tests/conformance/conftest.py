"""Fixtures for the conformance tier: the OpenAPI document (parsed once per session)."""

from __future__ import annotations

import pytest

from tests.conformance.schema import OpenAPI, openapi


@pytest.fixture(scope="session")
def spec() -> OpenAPI:
    return openapi()
