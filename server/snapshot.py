"""The in-memory view the hot path reads: keys by hash, projects, models and their price cards.

Nothing on the request path reads the database. Admin changes write the database first and then
update the snapshot, so a revocation is effective on the very next request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from server.metering import FREE, Rates
from server.scopes import KeyScopes
from server.settings import Settings
from server.store.protocol import Loaded
from server.types import Target


@dataclass(slots=True)
class KeyEntry:
    id: str
    project_id: str
    name: str | None
    prefix: str
    key_hash: str
    scopes: KeyScopes
    created_ms: int
    expires_ms: int | None = None
    revoked_ms: int | None = None
    prev_key_hash: str | None = None
    prev_valid_until_ms: int | None = None
    last_used_ms: int | None = None  # set in memory on each authenticated request; persisted in batches

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> KeyEntry:
        fields = {name: row.get(name) for name in cls.__slots__}  # type: ignore[attr-defined]
        fields["scopes"] = KeyScopes.parse(row.get("scopes") or {})
        return cls(**fields)

    def public(self) -> dict[str, Any]:
        """What admins may see: never the hash."""
        return {
            "id": self.id,
            "project_id": self.project_id,
            "name": self.name,
            "prefix": self.prefix,
            "scopes": self.scopes.as_dict(),
            "created_ms": self.created_ms,
            "expires_ms": self.expires_ms,
            "revoked_ms": self.revoked_ms,
            "prev_valid_until_ms": self.prev_valid_until_ms if self.prev_key_hash else None,
            "last_used_ms": self.last_used_ms,
            "status": "revoked" if self.revoked_ms is not None else "active",
        }


@dataclass(slots=True)
class ProjectEntry:
    id: str
    name: str
    plan: str | None
    billing: str
    created_ms: int
    monthly_budget_micro: int | None = None
    stripe_customer_id: str | None = None
    billing_name: str | None = None
    billing_address: str | None = None
    billing_tax_id: str | None = None
    billing_email: str | None = None
    tax_rate: str | None = None  # percent as exact decimal text; None: the configured default

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ProjectEntry:
        return cls(**{name: row.get(name) for name in cls.__slots__})  # type: ignore[attr-defined]

    @property
    def prepaid(self) -> bool:
        return self.billing == "prepaid"

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "plan": self.plan,
            "billing": self.billing,
            "created_ms": self.created_ms,
            "monthly_budget_micro": self.monthly_budget_micro,
            "stripe_customer_id": self.stripe_customer_id,
            "billing_details": {
                "name": self.billing_name,
                "address": self.billing_address,
                "tax_id": self.billing_tax_id,
                "email": self.billing_email,
                "tax_rate": self.tax_rate,
            },
        }


@dataclass(slots=True, frozen=True)
class ModelEntry:
    name: str
    targets: tuple[Target, ...]
    rates: Rates
    capabilities: tuple[str, ...]
    context_window: int
    cache_ttl_s: int | None = None  # the model's `cache.ttl_s` (None: not set; see server/cache_policy.py)


NO_MODEL = ModelEntry(name="", targets=(), rates=FREE, capabilities=(), context_window=0)  # calls without a model


def model_entries(settings: Settings) -> dict[str, ModelEntry]:
    """The public models of a config: targets, price card (as integer rates), capabilities."""
    return {
        model.name: ModelEntry(
            name=model.name,
            targets=tuple(Target.parse(t) for t in model.targets),
            rates=Rates.from_card(model.price),
            capabilities=tuple(model.capabilities or ()),
            context_window=model.context_window,
            cache_ttl_s=model.cache.ttl_s if model.cache is not None else None,
        )
        for model in settings.models
    }


@dataclass
class Snapshot:
    keys_by_hash: dict[str, KeyEntry] = field(default_factory=dict)
    keys_by_id: dict[str, KeyEntry] = field(default_factory=dict)
    projects_by_id: dict[str, ProjectEntry] = field(default_factory=dict)
    projects_by_name: dict[str, ProjectEntry] = field(default_factory=dict)
    admin_hashes: set[str] = field(default_factory=set)
    models: dict[str, ModelEntry] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, catalog: Loaded) -> Snapshot:
        """From the config's models and the catalog rows the store loaded (projects, keys, admin)."""
        snap = cls(models=model_entries(settings))
        for row in catalog.projects:
            snap.put_project(ProjectEntry.from_row(row))
        for row in catalog.keys:
            snap.put_key(KeyEntry.from_row(row))
        snap.admin_hashes = set(catalog.admin_hashes)
        return snap

    def put_project(self, project: ProjectEntry) -> None:
        self.projects_by_id[project.id] = project
        self.projects_by_name[project.name] = project

    def put_key(self, key: KeyEntry) -> None:
        self.keys_by_hash[key.key_hash] = key
        if key.prev_key_hash:
            self.keys_by_hash[key.prev_key_hash] = key
        self.keys_by_id[key.id] = key

    def forget_hash(self, key_hash: str) -> None:
        self.keys_by_hash.pop(key_hash, None)

    def project(self, ref: str) -> ProjectEntry | None:
        """A project by id or by name."""
        return self.projects_by_id.get(ref) or self.projects_by_name.get(ref)
