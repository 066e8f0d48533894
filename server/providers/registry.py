"""One line per provider kind: adding a kind means adding its class here."""

from __future__ import annotations

from server.providers.anthropic import AnthropicProvider
from server.providers.base import Provider
from server.providers.gemini import GeminiProvider
from server.providers.mock import MockProvider
from server.providers.openai import OpenAIProvider
from server.settings import ProviderSettings

KINDS: dict[str, type] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
    "gemini": GeminiProvider,
    "mock": MockProvider,
}


def build_providers(settings: list[ProviderSettings]) -> dict[str, Provider]:
    return {p.name: KINDS[p.kind](p) for p in settings}
