"""Configuration: config.toml plus GATEWAY_* environment overrides (pydantic-settings).

The TOML file is read by `load_settings`; environment variables win over it key by key
(`GATEWAY_SERVER__PORT=9000`). Paths in the file are relative to the file's folder. An invalid
configuration raises `ConfigError` whose message is one line naming the offending key.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

CONFIG_ENV = "GATEWAY_CONFIG"
ADMIN_TOKEN_ENV = "GATEWAY_ADMIN_TOKEN"


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line naming the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    data_dir: Path = Path("data")
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    workers: int = Field(1, ge=1)
    trusted_proxies: list[str] = Field(default_factory=list)
    # Slow and hostile clients (enforced by server/http_guard): deadlines, header cap, connection cap.
    header_timeout_s: float = Field(10.0, gt=0)
    body_timeout_s: float = Field(30.0, gt=0)
    body_min_bytes_per_s: int = Field(8192, ge=0)
    keep_alive_timeout_s: int = Field(30, ge=1)
    max_header_bytes: int = Field(32768, ge=1024)
    max_connections: int = Field(2048, ge=2)
    reserved_connections: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _room_for_general_requests(self) -> ServerSettings:
        if self.reserved_connections >= self.max_connections:
            raise ValueError("reserved_connections must be below max_connections")
        return self


class StorageSettings(_Strict):
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    busy_timeout_ms: int = Field(5000, ge=0)
    max_batch: int = Field(512, ge=1)


class Timeouts(_Strict):
    connect: float = Field(5.0, gt=0)
    first_byte: float = Field(60.0, gt=0)
    total: float = Field(600.0, gt=0)


class ProviderSettings(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["openai", "anthropic", "gemini", "mock"]
    base_url: str | None = None
    api_key_env: str | None = None
    timeouts: Timeouts = Field(default_factory=Timeouts)
    max_connections: int = Field(200, ge=1)
    max_idle_connections: int = Field(32, ge=0)
    http_transport: Literal["lean", "httpcore"] = "lean"
    # Anthropic only: the API version header every request carries, and max_tokens when the client gives
    # none (Anthropic requires it; OpenAI clients often omit it).
    anthropic_version: str = "2023-06-01"
    default_max_tokens: int = Field(4096, ge=1)

    @model_validator(mode="after")
    def _needs_base_url(self) -> ProviderSettings:
        if self.kind != "mock" and not self.base_url:
            raise ValueError(f"provider {self.name!r} of kind {self.kind!r} needs base_url")
        return self

    def api_key(self) -> str | None:
        """The provider secret comes from the environment, never from the database."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class PriceCard(_Strict):
    """Currency units per 1M tokens; converted to integer micro-units once, at load."""

    input: Decimal = Decimal(0)
    output: Decimal = Decimal(0)
    cached_input: Decimal | None = None

    @field_validator("input", "output", "cached_input")
    @classmethod
    def _non_negative(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and value < 0:
            raise ValueError("prices cannot be negative")
        return value


class ModelSettings(_Strict):
    name: str = Field(min_length=1)
    targets: list[str] = Field(min_length=1)
    price: PriceCard = Field(default_factory=PriceCard)
    capabilities: list[Literal["chat", "embeddings", "tools", "vision", "json"]] = Field(
        default_factory=lambda: ["chat", "tools", "json"]
    )
    context_window: int = Field(128_000, ge=1)

    @field_validator("targets")
    @classmethod
    def _target_shape(cls, targets: list[str]) -> list[str]:
        for target in targets:
            provider, sep, model = target.partition(":")
            if not sep or not provider or not model:
                raise ValueError(f"target {target!r} must look like 'provider:upstream-model'")
        return targets


ENDPOINT_CLASSES = ("chat", "embeddings", "images", "audio", "files", "realtime")


class PlanSettings(_Strict):
    """Per endpoint class requests per minute, and tokens per minute, for every project on the plan."""

    rpm: dict[Literal["chat", "embeddings", "images", "audio", "files", "realtime"], int] = Field(default_factory=dict)
    tpm: int | None = Field(None, ge=1)

    @field_validator("rpm")
    @classmethod
    def _positive(cls, rpm: dict[str, int]) -> dict[str, int]:
        for name, value in rpm.items():
            if value < 1:
                raise ValueError(f"rpm.{name} must be at least 1")
        return rpm


class LimitSettings(_Strict):
    default_max_output_tokens: int = Field(4096, ge=1)
    ip_requests: int = Field(5000, ge=1)
    ip_window_seconds: int = Field(600, ge=1)
    rate_limited_event_interval_seconds: int = Field(60, ge=1)


class RoutingSettings(_Strict):
    """Retries and cooldowns across a model's targets."""

    retries: int = Field(1, ge=0, le=10)
    backoff_base_ms: int = Field(100, ge=0)
    backoff_max_ms: int = Field(2000, ge=0)
    max_retry_after_seconds: float = Field(5.0, ge=0)
    cooldown_failures: int = Field(5, ge=1)
    cooldown_seconds: float = Field(30.0, ge=0)


class BillingSettings(_Strict):
    timezone: str = "UTC"
    currency: str = Field("USD", min_length=3, max_length=3)
    invoice_prefix: str = "INV-"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r}") from None
        return zone


class StripeSettings(_Strict):
    """Stripe: secrets come from the environment; api_base lets tests use a local stand-in."""

    api_key_env: str = "STRIPE_SECRET_KEY"
    webhook_secret_env: str = "STRIPE_WEBHOOK_SECRET"
    api_base: str | None = None
    tolerance_seconds: int = Field(300, ge=1)
    success_url: str = "https://example.com/billing/success"
    cancel_url: str = "https://example.com/billing/cancel"

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env)

    def webhook_secret(self) -> str | None:
        return os.environ.get(self.webhook_secret_env)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_nested_delimiter="__", extra="forbid")

    server: ServerSettings = Field(default_factory=ServerSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    providers: list[ProviderSettings] = Field(default_factory=list)
    models: list[ModelSettings] = Field(default_factory=list)
    plans: dict[str, PlanSettings] = Field(default_factory=dict)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    billing: BillingSettings = Field(default_factory=BillingSettings)
    stripe: StripeSettings = Field(default_factory=StripeSettings)
    config_dir: Path = Path(".")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file (which arrives as init kwargs).
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        names = [p.name for p in self.providers]
        if len(names) != len(set(names)):
            raise ValueError("providers: names must be unique")
        for model in self.models:
            for target in model.targets:
                provider = target.partition(":")[0]
                if provider not in names:
                    raise ValueError(f"models: {model.name!r} targets unknown provider {provider!r}")
        for cidr in self.server.trusted_proxies:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"server.trusted_proxies: {cidr!r} is not a CIDR") from None
        model_names = [m.name for m in self.models]
        if len(model_names) != len(set(model_names)):
            raise ValueError("models: names must be unique")
        return self

    @property
    def data_path(self) -> Path:
        data = self.server.data_dir
        return data if data.is_absolute() else (self.config_dir / data)

    @property
    def database_path(self) -> Path:
        return self.data_path / "gateway.db"


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "config"
    extra = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    message = first["msg"].removeprefix("Value error, ")
    return f"{location}: {message}{extra}"


def load_settings(path: Path | str | None = None) -> Settings:
    """Read the config file (if any) and apply environment overrides."""
    chosen = path or os.environ.get(CONFIG_ENV)
    data: dict[str, Any] = {}
    config_dir = Path.cwd()
    if chosen:
        file = Path(chosen)
        if not file.is_file():
            raise ConfigError(f"config file not found: {file}")
        try:
            data = tomllib.loads(file.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: invalid TOML: {exc}") from None
        config_dir = file.resolve().parent
    data["config_dir"] = config_dir
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(f"invalid config: {_describe(exc)}") from None
