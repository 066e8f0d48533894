"""The few core types every request passes through (see ARCHITECTURE.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.snapshot import KeyEntry, ProjectEntry


@dataclass(slots=True, frozen=True)
class Caller:
    """Who is calling: the authenticated key and its project."""

    project_id: str
    key_id: str
    client_ip: str
    key: KeyEntry | None = None
    project: ProjectEntry | None = None


@dataclass(slots=True, frozen=True)
class Target:
    """One upstream route for a public model: provider name + the provider's model name."""

    provider: str
    model: str

    @classmethod
    def parse(cls, text: str) -> Target:
        provider, _, model = text.partition(":")
        return cls(provider, model)

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


class Unit:
    """The metered units. Token units count tokens; `input_tokens` includes the cached and audio input
    tokens (pricing takes those parts out and prices them at their own rates), `output_tokens` includes
    the audio output tokens. `cache_hit_tokens` are tokens of `input_tokens` (then of `output_tokens`)
    that the gateway's answer cache served instead of an upstream (priced at the card's `cache_hit`).
    Images are counted per size and quality: `image_unit("1024x1024", "hd")`."""

    INPUT_TOKENS = "input_tokens"
    OUTPUT_TOKENS = "output_tokens"
    CACHED_TOKENS = "cached_tokens"
    AUDIO_INPUT_TOKENS = "audio_input_tokens"
    AUDIO_OUTPUT_TOKENS = "audio_output_tokens"
    CACHE_HIT_TOKENS = "cache_hit_tokens"
    SPEECH_CHARACTERS = "speech_characters"
    AUDIO_SECONDS = "audio_seconds"
    VIDEO_SECONDS = "video_seconds"
    MUSIC_SECONDS = "music_seconds"
    STORED_BYTES = "stored_bytes"
    IMAGE_PREFIX = "images:"

    TOKENS = (INPUT_TOKENS, OUTPUT_TOKENS, CACHED_TOKENS)  # the usage table's own columns


def image_unit(size: str, quality: str | None = None) -> str:
    return f"{Unit.IMAGE_PREFIX}{size}/{quality}" if quality else f"{Unit.IMAGE_PREFIX}{size}"


class Usage:
    """Metered quantities by unit (see `Unit`), as the provider reported them or estimated (and marked)."""

    __slots__ = ("estimated", "quantities")

    def __init__(self, quantities: Mapping[str, int] | None = None, *, estimated: bool = False, **units: int) -> None:
        merged = {**(quantities or {}), **units}
        self.quantities: dict[str, int] = {unit: amount for unit, amount in merged.items() if amount}
        self.estimated = estimated

    def get(self, unit: str) -> int:
        return self.quantities.get(unit, 0)

    @property
    def input_tokens(self) -> int:
        return self.quantities.get(Unit.INPUT_TOKENS, 0)

    @property
    def output_tokens(self) -> int:
        return self.quantities.get(Unit.OUTPUT_TOKENS, 0)

    @property
    def cached_tokens(self) -> int:
        return self.quantities.get(Unit.CACHED_TOKENS, 0)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def others(self) -> dict[str, int]:
        """The quantities beyond the three token columns (images, seconds, characters, audio tokens...)."""
        return {unit: amount for unit, amount in self.quantities.items() if unit not in Unit.TOKENS}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Usage) and (self.quantities, self.estimated) == (other.quantities, other.estimated)

    def __repr__(self) -> str:
        marked = ", estimated" if self.estimated else ""
        return f"Usage({self.quantities}{marked})"


@dataclass(slots=True, frozen=True)
class Charge:
    """Money for one request: integer micro-units and the price card (micro-units) that produced it."""

    micro: int
    card: Mapping[str, Any]


@dataclass(slots=True)
class Call:
    """What the client asked for, independent of HTTP."""

    request_id: str
    endpoint: str
    model: str
    body: dict[str, Any]
    stream: bool = False
    client_request_id: str | None = None
    started_ms: int = 0
    arrived: float = 0.0  # time.perf_counter() when the HTTP request arrived (the overhead metric's start)
    body_bytes: int = 0  # size of the body as JSON: the input-token upper bound and the estimate base
    raw: bytes = b""  # the body as the client sent it (JSON), for the request log and replay
    replay_of: str | None = None  # the request this one replays (gatewayctl replay)
    pin: Target | None = None  # a replay sent to one target, not the model's own list (replay --target)
    cache_mode: str | None = None  # the client's x-gateway-cache: "use" or "bypass" (server/cache_policy.py)
    session_id: str | None = None  # a realtime session's row (its own id) or one of its responses (the session's)

    @property
    def is_session(self) -> bool:
        """The row of a realtime session: it carries no usage itself (its responses do)."""
        return self.session_id is not None and self.session_id == self.request_id


@dataclass(slots=True)
class Attempt:
    target: str
    status: int | str
    latency_ms: float

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "status": self.status, "latency_ms": round(self.latency_ms, 2)}


@dataclass(slots=True)
class Outcome:
    """How a call ended; this one record feeds the request log and the usage table."""

    status: str  # ok | error | client_disconnected | upstream_failed
    http_status: int
    target: Target | None = None
    usage: Usage | None = None
    charge: Charge | None = None
    error_code: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    ended_ms: int = 0
    cache_status: str | None = None  # HIT | MISS | BYPASS for a cacheable call (server/cache_policy.py)


def ended_request(caller: Caller, call: Call, outcome: Outcome) -> dict[str, Any]:
    """A finished request as events and followers describe it: ids, endpoint, model, how it ended, what
    served it (and what the answer cache did), its tokens and cost in micro-units, its latency."""
    usage, target = outcome.usage, outcome.target
    return {
        "request_id": call.request_id,
        "client_request_id": call.client_request_id,
        "project_id": caller.project_id,
        "key_id": caller.key_id,
        "endpoint": call.endpoint,
        "model": call.model,
        "stream": call.stream,
        "status": outcome.status,
        "http_status": outcome.http_status,
        "error_code": outcome.error_code,
        "provider": target.provider if target else None,
        "upstream_model": target.model if target else None,
        "input_tokens": usage.input_tokens if usage else 0,
        "output_tokens": usage.output_tokens if usage else 0,
        "cached_tokens": usage.cached_tokens if usage else 0,
        "estimated": usage.estimated if usage else False,
        "cost_micro": outcome.charge.micro if outcome.charge else 0,
        "cache_status": outcome.cache_status,
        "started_ms": call.started_ms,
        "ended_ms": outcome.ended_ms,
        "latency_ms": max(0, outcome.ended_ms - call.started_ms),
    }
