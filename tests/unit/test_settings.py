"""Configuration: file + environment overrides, and one clear line for invalid config."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.settings import ConfigError, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_example_config_loads_and_paths_are_relative_to_the_file() -> None:
    settings = load_settings(REPO / "config.example.toml")
    assert settings.server.port == 8080
    assert settings.database_path == REPO / "data" / "gateway.db"
    assert {p.kind for p in settings.providers} == {"mock"}


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_SERVER__PORT", "9000")
    monkeypatch.setenv("GATEWAY_STORAGE__SYNCHRONOUS", "NORMAL")
    settings = load_settings(REPO / "config.example.toml")
    assert settings.server.port == 9000
    assert settings.storage.synchronous == "NORMAL"
    assert settings.server.host == "127.0.0.1"  # untouched keys keep the file's values


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[server]\nport = "x"\n', "server.port"),
        ("[server]\nport = 70000\n", "server.port"),
        ('[storage]\nsynchronous = "OFF"\n', "storage.synchronous"),
        ('[[providers]]\nname = "p"\nkind = "openai"\n', "needs base_url"),
        ('[[providers]]\nname = "p"\nkind = "mock"\n[[models]]\nname = "m"\ntargets = ["p"]\n', "targets"),
        ("[server]\nporrt = 1\n", "server.porrt"),
        ("[server\n", "invalid TOML"),
        (
            '[[providers]]\nname = "p"\nkind = "mock"\n[[models]]\nname = "m"\ntargets = ["p:m"]\n'
            "price = { input = -1 }\n",
            "prices cannot be negative",
        ),
        (
            '[[providers]]\nname = "p"\nkind = "mock"\n[[models]]\nname = "m"\ntargets = ["p:m"]\n'
            "price = { output = 2000000 }\n",
            "refused (a typo?)",
        ),
        (
            '[[providers]]\nname = "p"\nkind = "mock"\n[[models]]\nname = "m"\ntargets = ["p:m"]\n'
            "price = { input = 0.0000001 }\n",
            "exact to 0.000001",
        ),
        ("[billing]\ntax_rate = 120\n", "billing.tax_rate"),
        ("[billing]\ntax_rate = 7.123456\n", "at most 4 decimals"),
        ("[billing]\npayment_terms_days = -1\n", "billing.payment_terms_days"),
    ],
)
def test_invalid_config_is_one_line_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    message = str(info.value)
    assert named in message
    assert "\n" not in message.strip()


def test_documented_config_covers_every_settings_key() -> None:
    """A key added to the settings must be documented in config.example.toml (and named in the README)."""
    from server.settings import (
        BillingSettings,
        CacheSettings,
        FileSettings,
        IdempotencySettings,
        JobSettings,
        LimitSettings,
        LoggingSettings,
        MetricsSettings,
        ModelCache,
        PlanSettings,
        ProviderSettings,
        RealtimeSettings,
        RoutingSettings,
        ServerSettings,
        StateSettings,
        StorageSettings,
        StoreSettings,
        StripeSettings,
        Timeouts,
        WebhookSettings,
    )

    text = (REPO / "config.example.toml").read_text()
    readme = (REPO / "README.md").read_text()
    for model in (
        ServerSettings,
        StorageSettings,
        StoreSettings,
        StateSettings,
        ProviderSettings,
        Timeouts,
        LimitSettings,
        RoutingSettings,
        BillingSettings,
        StripeSettings,
        LoggingSettings,
        MetricsSettings,
        IdempotencySettings,
        WebhookSettings,
        CacheSettings,
        ModelCache,
        FileSettings,
        JobSettings,
        PlanSettings,
        RealtimeSettings,
    ):
        for name in model.model_fields:
            assert name in text, f"{model.__name__}.{name} is not documented in config.example.toml"
            assert f"`{name}`" in readme, f"{model.__name__}.{name} is not in README's configuration table"


ANTHROPIC = '[[providers]]\nname = "claude"\nkind = "anthropic"\nbase_url = "http://127.0.0.1:9"\n'
MOCK = '[[providers]]\nname = "mock"\nkind = "mock"\n'


def test_a_model_routed_to_a_provider_that_cannot_serve_it_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        ANTHROPIC + MOCK + '[[models]]\nname = "emb"\ntargets = ["mock:e", "claude:c"]\ncapabilities = ["embeddings"]\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert "\n" not in message and "'emb'" in message and "'claude'" in message and "embeddings" in message


def test_a_model_without_capabilities_serves_what_all_its_providers_serve(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        ANTHROPIC
        + MOCK
        + '[[models]]\nname = "text-embedding-3-small"\ntargets = ["mock:e"]\n'
        + '[[models]]\nname = "smart"\ntargets = ["claude:c", "mock:m"]\n'
    )
    models = {m.name: set(m.capabilities or ()) for m in load_settings(path).models}
    assert "embeddings" in models["text-embedding-3-small"]  # a new user's hand-written embeddings model works
    assert "chat" in models["smart"] and "embeddings" not in models["smart"]
