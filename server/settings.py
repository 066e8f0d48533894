"""Configuration: config.toml plus GATEWAY_* environment overrides (pydantic-settings).

The TOML file is read by `load_settings`; environment variables win over it key by key
(`GATEWAY_SERVER__PORT=9000`). Paths in the file are relative to the file's folder. An invalid
configuration raises `ConfigError` whose message is one line naming the offending key.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from server.backends import StateSettings, StoreSettings
from server.capabilities import CAPABILITIES
from server.providers.kinds import CAPABILITIES as KIND_CAPABILITIES

Capability = Literal[
    "chat", "embeddings", "images", "speech", "transcription", "video", "music", "realtime", "tools", "vision", "json"
]

CONFIG_ENV = "GATEWAY_CONFIG"
ADMIN_TOKEN_ENV = "GATEWAY_ADMIN_TOKEN"
MAX_PRICE_PER_1M = Decimal(1_000_000)  # a currency unit per token: anything above is a typo


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line naming the key."""


def cidrs(networks: list[str]) -> list[str]:
    """A list of CIDRs, each checked (one line naming the first that is not one)."""
    for cidr in networks:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ValueError(f"{cidr!r} is not a CIDR") from None
    return networks


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    data_dir: Path = Path("data")
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    workers: int = Field(1, ge=1)
    trusted_proxies: list[str] = Field(default_factory=list)
    # A streaming client that reads nothing for this long is treated as gone (its upstream call is cancelled).
    stream_write_timeout_s: float = Field(30.0, gt=0)
    access_log: bool = True
    # Slow and hostile clients (enforced by server/http_guard): deadlines, header cap, connection cap.
    header_timeout_s: float = Field(10.0, gt=0)
    body_timeout_s: float = Field(30.0, gt=0)
    body_min_bytes_per_s: int = Field(8192, ge=0)
    keep_alive_timeout_s: int = Field(30, ge=1)
    max_header_bytes: int = Field(32768, ge=1024)
    max_connections: int = Field(2048, ge=2)
    reserved_connections: int = Field(64, ge=1)

    # SIGTERM: requests and streams in flight get this long to finish; then each open stream ends with an
    # error event, recorded and billed for what it delivered.
    shutdown_grace_s: float = Field(30.0, ge=0, le=3600)

    @model_validator(mode="after")
    def _room_for_general_requests(self) -> ServerSettings:
        if self.reserved_connections >= self.max_connections:
            raise ValueError("reserved_connections must be below max_connections")
        return self


class StorageSettings(_Strict):
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    busy_timeout_ms: int = Field(5000, ge=0)
    max_batch: int = Field(512, ge=1)
    # Below this much free space on the data dir's disk the store counts as full: requests get 503 before
    # anything is forwarded, until space returns.
    min_free_mb: int = Field(1, ge=0)
    # A WAL file past this size is checkpointed and truncated between write groups (bounded disk use).
    wal_limit_mb: int = Field(32, ge=1)


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
    # How many of those one project may hold at once (default: three quarters), so a tenant with stalled
    # streams cannot take the whole pool.
    max_connections_per_project: int | None = Field(None, ge=1)
    http_transport: Literal["lean", "httpcore"] = "lean"
    # The most a non-stream answer (and one stream event) may weigh; past it the call fails with a 502.
    max_response_mb: int = Field(32, ge=1)
    # When a client disconnects mid-stream: "cancel" the upstream call and bill what was delivered, or
    # "drain" it (for providers that bill the whole answer anyway): read it to the end and bill it all.
    on_disconnect: Literal["cancel", "drain"] = "cancel"
    # openai kind: the field that carries the output cap the gateway sends when the client gives none
    # (older OpenAI-compatible servers know only max_tokens).
    output_cap_field: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens"
    # Anthropic only: the API version header every request carries, and max_tokens when the client gives
    # none (Anthropic requires it; OpenAI clients often omit it).
    anthropic_version: str = "2023-06-01"
    default_max_tokens: int = Field(4096, ge=1)
    # Mock only: seconds a video or music job takes from its submission to completion (progress grows
    # linearly in between), so clients polling a fresh install see queued, in_progress, then completed.
    job_seconds: float = Field(3.0, ge=0, le=3600)

    @model_validator(mode="after")
    def _needs_base_url(self) -> ProviderSettings:
        if self.kind != "mock" and not self.base_url:
            raise ValueError(f"provider {self.name!r} of kind {self.kind!r} needs base_url")
        return self

    def api_key(self) -> str | None:
        """The provider secret comes from the environment, never from the database."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    @property
    def project_share(self) -> int:
        return self.max_connections_per_project or max(1, self.max_connections * 3 // 4)


class PriceCard(_Strict):
    """Currency units per the key's unit; converted to integer micro-units once, at load (see metering.Rates).

    Per 1M tokens: input, output, cached_input (default: input), audio_input (default: input),
    audio_output (default: output), cache_hit (embeddings served from the cache; default 0). Per 1M
    characters of speech: per_1m_characters. Per minute of transcribed audio: per_minute_audio. Per
    second: per_second_video, per_second_music. Per image: per_image, by size or size/quality."""

    input: Decimal = Decimal(0)
    output: Decimal = Decimal(0)
    cached_input: Decimal | None = None
    audio_input: Decimal | None = None
    audio_output: Decimal | None = None
    cache_hit: Decimal | None = None
    per_1m_characters: Decimal | None = None
    per_minute_audio: Decimal | None = None
    per_second_video: Decimal | None = None
    per_second_music: Decimal | None = None
    per_image: dict[str, Decimal] = Field(default_factory=dict)

    @field_validator(
        "input",
        "output",
        "cached_input",
        "audio_input",
        "audio_output",
        "cache_hit",
        "per_1m_characters",
        "per_minute_audio",
        "per_second_video",
        "per_second_music",
    )
    @classmethod
    def _non_negative(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and value < 0:
            raise ValueError("prices cannot be negative")
        if value is not None and value > MAX_PRICE_PER_1M:
            raise ValueError(f"prices above {MAX_PRICE_PER_1M:,} per 1M tokens are refused (a typo?)")
        if value is not None and value != value.quantize(Decimal("0.000001")):
            raise ValueError("prices are exact to 0.000001 (one micro-unit) per 1M tokens")
        return value

    @field_validator("per_image")
    @classmethod
    def _image_prices(cls, prices: dict[str, Decimal]) -> dict[str, Decimal]:
        for size, value in prices.items():
            if not re.fullmatch(r"\d+x\d+(/[a-z]+)?|auto(/[a-z]+)?", size):
                raise ValueError(f"per_image key {size!r} must look like '1024x1024' or '1024x1024/hd'")
            if value < 0 or value > MAX_PRICE_PER_1M or value != value.quantize(Decimal("0.000001")):
                raise ValueError(f"per_image {size!r}: a price from 0 to {MAX_PRICE_PER_1M:,}, exact to 0.000001")
        return prices


class ModelCache(_Strict):
    """How long this model's answers stay in the answer cache (server/cache_policy.py); 0: never cached."""

    ttl_s: int = Field(3600, ge=0)


class ModelSettings(_Strict):
    name: str = Field(min_length=1)
    targets: list[str] = Field(min_length=1)
    price: PriceCard = Field(default_factory=PriceCard)
    # What the model serves; unset: whatever every one of its targets' providers can serve.
    capabilities: list[Capability] | None = None
    context_window: int = Field(128_000, ge=1)
    # Opt-in cache of whole chat answers (requests with temperature 0, or the header x-gateway-cache: use);
    # for embeddings, which are cached by default for a day, it sets their time to live instead.
    cache: ModelCache | None = None

    @field_validator("targets")
    @classmethod
    def _target_shape(cls, targets: list[str]) -> list[str]:
        for target in targets:
            provider, sep, model = target.partition(":")
            if not sep or not provider or not model:
                raise ValueError(f"target {target!r} must look like 'provider:upstream-model'")
        return targets


EndpointClass = Literal["chat", "embeddings", "images", "audio", "files", "video", "realtime"]


class PlanSettings(_Strict):
    """Per endpoint class requests per minute, tokens per minute, and the file storage quota (MiB), for
    every project on the plan; and how many realtime sessions a project (and each of its keys) may hold
    open at once (unset: no plan limit)."""

    rpm: dict[EndpointClass, int] = Field(default_factory=dict)
    tpm: int | None = Field(None, ge=1)
    storage_mb: int = Field(1024, ge=0)
    realtime_sessions: int | None = Field(None, ge=1)
    realtime_sessions_per_key: int | None = Field(None, ge=1)

    @field_validator("rpm")
    @classmethod
    def _positive(cls, rpm: dict[str, int]) -> dict[str, int]:
        for name, value in rpm.items():
            if value < 1:
                raise ValueError(f"rpm.{name} must be at least 1")
        return rpm


class LoggingSettings(_Strict):
    """Log lines, and the request log's bodies (compressed, secrets scrubbed, bounded in size and age)."""

    format: Literal["text", "json"] = "text"
    bodies: Literal["all", "errors", "off"] = "all"
    max_body_bytes: int = Field(256 * 1024, ge=1024)
    retention_days: int = Field(30, ge=1)
    max_disk_mb: int = Field(1024, ge=1)


class IdempotencySettings(_Strict):
    retention_hours: int = Field(24, ge=1, le=24 * 30)


class CacheSettings(_Strict):
    """The embeddings (and opt-in chat) answer cache, in memory: at most max_mb MiB (0 turns it off)."""

    max_mb: int = Field(64, ge=0)


class MetricsSettings(_Strict):
    """Prometheus /metrics on the main port (admin token needed unless public), or on a port of its own."""

    enabled: bool = True
    public: bool = False
    port: int = Field(0, ge=0, le=65535)


class LimitSettings(_Strict):
    default_max_output_tokens: int = Field(4096, ge=1)
    ip_requests: int = Field(5000, ge=1)
    ip_window_seconds: int = Field(600, ge=1)
    rate_limited_event_interval_seconds: int = Field(60, ge=1)


class RealtimeSettings(_Strict):
    """The realtime WebSocket proxy (/v1/realtime): session bounds, buffers and deadlines."""

    # A session is closed after this long, whatever it does (a new one can be opened at once).
    max_session_s: float = Field(3600.0, gt=0)
    # A session with no event either way for this long is closed.
    idle_timeout_s: float = Field(300.0, gt=0)
    # A client that has not taken an event for this long (it stopped reading) is disconnected.
    write_timeout_s: float = Field(10.0, gt=0)
    # KiB of events waiting for a slow client, beyond the socket's own buffer; past it the upstream waits.
    send_buffer_kb: int = Field(1024, ge=16, le=1 << 20)
    # The largest event either side may send, in MiB (an audio append of ~15 MiB fits the default).
    max_event_mb: int = Field(16, ge=1, le=256)
    # Sessions open at once on this server, whoever holds them (plans limit each project and key).
    max_sessions: int = Field(1000, ge=1)
    # When a session ends with a response in flight, how long the upstream may take to report its usage
    # (response.done) after being told to cancel; past it the response is billed by estimate.
    cancel_wait_s: float = Field(2.0, ge=0, le=60)


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
    # The key of the ledger's hash chain (HMAC), kept outside the database; relative to config.toml's folder.
    ledger_key_file: Path = Path("ledger.key")
    # Who sends the invoices (the issuer block); address lines separated by newlines.
    issuer_name: str = ""
    issuer_address: str = ""
    issuer_tax_id: str = ""
    issuer_email: str = ""
    payment_terms_days: int = Field(30, ge=0, le=365)
    payment_note: str = ""
    # Tax added to invoices: a percent (exact decimal); unset adds no tax line. Projects may override it.
    tax_name: str = "Tax"
    tax_rate: Decimal | None = Field(None, ge=0, le=100)

    @field_validator("tax_rate")
    @classmethod
    def _rate_places(cls, rate: Decimal | None) -> Decimal | None:
        if rate is not None and rate != rate.quantize(Decimal("0.0001")):
            raise ValueError("tax_rate takes at most 4 decimals (a percent, e.g. 20 or 7.25)")
        return rate

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


class FileSettings(_Strict):
    """The Files API and the media the gateway stores (generated images, videos, music): size caps, signed
    download URLs, and the rules for fetching remote media URLs (the same SSRF rules as webhooks)."""

    # The largest single upload (MiB); larger is refused with 413 while it streams, nothing kept.
    max_file_mb: int = Field(512, ge=1)
    # Signed download URLs (generated images, job results) stay valid this long (seconds; 7 days).
    url_ttl_s: int = Field(7 * 86_400, ge=60, le=366 * 86_400)
    # The scheme and host signed URLs are built with (e.g. https://gateway.example.com); empty: the host
    # the client called.
    public_url: str = ""
    # Remote image URLs a provider needs as bytes (Gemini) are fetched by the gateway: only public
    # addresses (after DNS resolution, on every redirect) unless inside fetch_allow_networks; https only
    # unless fetch_allow_http; at most fetch_max_mb, within fetch_timeout_s.
    fetch_allow_networks: list[str] = Field(default_factory=list)
    fetch_allow_http: bool = False
    fetch_max_mb: int = Field(20, ge=1, le=512)
    fetch_timeout_s: float = Field(10.0, gt=0, le=120)

    @field_validator("fetch_allow_networks")
    @classmethod
    def _cidrs(cls, networks: list[str]) -> list[str]:
        return cidrs(networks)

    @field_validator("public_url")
    @classmethod
    def _url(cls, url: str) -> str:
        if url and not re.fullmatch(r"https?://[^/\s?#]+(/[^\s?#]*)?", url):
            raise ValueError("public_url must look like https://gateway.example.com")
        return url.rstrip("/")


class JobSettings(_Strict):
    """Asynchronous jobs (video, music): how often running jobs are polled upstream, and when they give up."""

    poll_interval_s: float = Field(2.0, gt=0, le=600)
    # A job not finished this long after it was created fails (its reservation is released, nothing billed).
    timeout_s: int = Field(3600, ge=1, le=7 * 86_400)
    # Jobs polled or submitted at once; more wait their turn.
    concurrency: int = Field(4, ge=1, le=64)


DEFAULT_RETRY_SCHEDULE_S = [5, 300, 1800, 7200, 18000, 36000, 36000, 72000, 86400]  # ~3 days, 10 attempts


class WebhookSettings(_Strict):
    """Outgoing webhooks: where they may go (SSRF rules), how long a delivery may take, how it is retried."""

    # CIDRs a webhook URL may resolve to despite the private/loopback/link-local/metadata rule.
    allow_networks: list[str] = Field(default_factory=list)
    # Plain http:// URLs (https only by default).
    allow_http: bool = False
    # The delays (seconds) between a failed attempt and the next; one attempt more than there are delays.
    retry_schedule_s: list[float] = Field(default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE_S), min_length=1)
    # One attempt (resolve, connect, send, answer) gives up after this long.
    timeout_s: float = Field(10.0, gt=0, le=60)
    # An endpoint whose deliveries have failed for this long (with no success between) is disabled.
    disable_after_days: float = Field(5.0, gt=0)
    # Deliveries in flight to one endpoint at once; 1 keeps the receiver's arrival order strict.
    concurrency_per_endpoint: int = Field(1, ge=1, le=32)
    # Events, finished deliveries and their attempts older than this are deleted (pending ones stay). At
    # least 35 days: a month's threshold events must outlive the month, so a restart cannot announce them again.
    retention_days: int = Field(90, ge=35)

    @field_validator("allow_networks")
    @classmethod
    def _cidrs(cls, networks: list[str]) -> list[str]:
        return cidrs(networks)

    @field_validator("retry_schedule_s")
    @classmethod
    def _delays(cls, delays: list[float]) -> list[float]:
        if any(not 0 <= d <= 7 * 86_400 for d in delays):
            raise ValueError("each delay is 0 to 604800 seconds")
        return delays


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_nested_delimiter="__", extra="forbid")

    server: ServerSettings = Field(default_factory=ServerSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    providers: list[ProviderSettings] = Field(default_factory=list)
    models: list[ModelSettings] = Field(default_factory=list)
    plans: dict[str, PlanSettings] = Field(default_factory=dict)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    idempotency: IdempotencySettings = Field(default_factory=IdempotencySettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    realtime: RealtimeSettings = Field(default_factory=RealtimeSettings)
    billing: BillingSettings = Field(default_factory=BillingSettings)
    stripe: StripeSettings = Field(default_factory=StripeSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    files: FileSettings = Field(default_factory=FileSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    config_dir: Path = Path(".")
    config_file: Path | None = None  # set by load_settings: the file a reload reads again

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
        if self.server.workers > 1 and not (self.store.shared and self.state.shared):
            raise ValueError(
                "server.workers: more than 1 needs [store] url (PostgreSQL) and [state] url (Redis): limits,"
                " reservations and the ledger must be shared by every process"
            )
        model_names = [m.name for m in self.models]
        if len(model_names) != len(set(model_names)):
            raise ValueError("models: names must be unique")
        kinds = {p.name: p.kind for p in self.providers}
        for model in self.models:
            served = _served_by(model, kinds)
            if model.capabilities is None:
                model.capabilities = [c for c in CAPABILITIES if c in served]  # type: ignore[misc]
                continue
            for capability in model.capabilities:
                if capability not in served:
                    provider = next(
                        t.partition(":")[0]
                        for t in model.targets
                        if capability not in KIND_CAPABILITIES[kinds[t.partition(":")[0]]]
                    )
                    raise ValueError(
                        f"models: {model.name!r} lists {capability!r} but its target provider {provider!r}"
                        f" ({kinds[provider]}) cannot serve it"
                    )
        return self

    @property
    def data_path(self) -> Path:
        data = self.server.data_dir
        return data if data.is_absolute() else (self.config_dir / data)

    @property
    def database_path(self) -> Path:
        return self.data_path / "gateway.db"

    @property
    def files_path(self) -> Path:
        """Where stored files live: one folder per project under the data dir."""
        return self.data_path / "files"

    @property
    def ledger_key_path(self) -> Path:
        path = self.billing.ledger_key_file
        return path if path.is_absolute() else (self.config_dir / path)


def _served_by(model: ModelSettings, kinds: dict[str, str]) -> frozenset[str]:
    """What every target of a model can serve (a fallback must be able to answer what the first one does)."""
    served = frozenset(CAPABILITIES)
    for target in model.targets:
        served &= KIND_CAPABILITIES[kinds[target.partition(":")[0]]]
    return served


# What a reload applies (server/reload.py); a change anywhere else needs a restart.
RELOADABLE = ("providers", "models", "plans", "limits", "routing")


def restart_needed(running: Settings, loaded: Settings) -> list[str]:
    """Keys whose new value a reload cannot apply (the listener, storage, billing): `section.key` names."""
    changed: list[str] = []
    for section in type(running).model_fields:
        if section in RELOADABLE or section in ("config_dir", "config_file"):
            continue
        old, new = getattr(running, section), getattr(loaded, section)
        if old == new:
            continue
        if isinstance(old, BaseModel):
            changed += [f"{section}.{key}" for key in type(old).model_fields if getattr(old, key) != getattr(new, key)]
        else:
            changed.append(section)
    return changed


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
        data["config_file"] = file.resolve()
    data["config_dir"] = config_dir
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(f"invalid config: {_describe(exc)}") from None
