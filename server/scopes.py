"""What a key may do: models (exact or `gpt-4o*` wildcards), endpoint classes, client IP ranges,
its own RPM/TPM and monthly budget. Parsed once when the key is loaded, checked on every request."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from server.capabilities import ENDPOINT_CLASSES
from server.errors import ENDPOINT_NOT_ALLOWED, INVALID_SCOPE, IP_NOT_ALLOWED, MODEL_NOT_ALLOWED

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(slots=True, frozen=True)
class KeyScopes:
    models: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()
    ips: tuple[Network, ...] = ()
    rpm: int | None = None
    tpm: int | None = None
    monthly_budget_micro: int | None = None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> KeyScopes:
        """From admin input or the stored JSON; raises a 400 naming the bad scope."""
        models = _strings(data.get("models"), "models")
        endpoints = _strings(data.get("endpoints"), "endpoints")
        for endpoint in endpoints:
            if endpoint not in ENDPOINT_CLASSES:
                raise INVALID_SCOPE(
                    detail=f"Unknown endpoint class '{endpoint}'; use {', '.join(ENDPOINT_CLASSES)}.", param="endpoints"
                )
        networks = []
        for cidr in _strings(data.get("ips"), "ips"):
            try:
                networks.append(ipaddress.ip_network(cidr, strict=False))
            except ValueError:
                raise INVALID_SCOPE(detail=f"'{cidr}' is not an IP address or CIDR range.", param="ips") from None
        return cls(
            models=models,
            endpoints=endpoints,
            ips=tuple(networks),
            rpm=_positive(data.get("rpm"), "rpm"),
            tpm=_positive(data.get("tpm"), "tpm"),
            monthly_budget_micro=_positive(data.get("monthly_budget_micro"), "monthly_budget_micro"),
        )

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.models:
            out["models"] = list(self.models)
        if self.endpoints:
            out["endpoints"] = list(self.endpoints)
        if self.ips:
            out["ips"] = [str(n) for n in self.ips]
        for name in ("rpm", "tpm", "monthly_budget_micro"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    def check_ip(self, client_ip: str) -> None:
        if not self.ips:
            return
        try:
            address = ipaddress.ip_address(client_ip)
        except ValueError:
            address = None
        if address is None or not any(address in net for net in self.ips):
            raise IP_NOT_ALLOWED(address=client_ip or "this address")

    def check_call(self, endpoint_class: str, model: str | None) -> None:
        if self.endpoints and endpoint_class not in self.endpoints:
            raise ENDPOINT_NOT_ALLOWED(endpoint_class=endpoint_class)
        if model is not None and self.models and not any(fnmatchcase(model, pattern) for pattern in self.models):
            raise MODEL_NOT_ALLOWED(model=model, param="model")


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise INVALID_SCOPE(detail=f"'{name}' must be a list of strings.", param=name)
    return tuple(value)


MAX_SCOPE_VALUE = 2**53  # rpm, tpm and budgets past this are not limits; refused


def _positive(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SCOPE_VALUE:
        raise INVALID_SCOPE(detail=f"'{name}' must be a positive integer.", param=name)
    return value
