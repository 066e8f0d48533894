"""The few core types every request passes through (see ARCHITECTURE.md)."""

from __future__ import annotations

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


@dataclass(slots=True, frozen=True)
class PriceRates:
    """Integer micro-units per 1M tokens, fixed when the config is loaded."""

    input: int
    output: int
    cached_input: int

    def as_card(self) -> dict[str, int]:
        return {"input": self.input, "output": self.output, "cached_input": self.cached_input}


@dataclass(slots=True)
class Usage:
    """Tokens by kind, as the provider reported them (or estimated when it did not)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True, frozen=True)
class Charge:
    """Money for one request: integer micro-units and the price card that produced it."""

    micro: int
    rates: PriceRates


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
    endpoint_class: str = "chat"
    body_bytes: int = 0  # size of the body as JSON: the input-token upper bound and the estimate base
    headers: dict[str, str] = field(default_factory=dict)  # response headers the pipeline adds


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
