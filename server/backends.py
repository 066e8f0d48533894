"""Where the store and the hot state live: one process's own (the default) or shared by a fleet.

`[store] url` names a PostgreSQL database (server/store/postgres/), `[state] url` a Redis or Valkey
server (server/state/); `gatewayctl serve --workers N` needs both (server/settings.py checks it).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoreSettings(_Strict):
    """Where the store lives: empty `url` is SQLite in the data dir (the default); `postgresql://…` is a
    PostgreSQL database shared by a fleet of gateway processes (server/store/postgres/)."""

    url: str = ""
    # Read connections each process keeps open to PostgreSQL (the writer has one of its own).
    pool_size: int = Field(4, ge=1, le=64)
    # A process that has not renewed its lease for this long is dead: its pending requests are closed (as
    # a restart closes them), its holds released, and the background work it held is taken over.
    instance_ttl_s: float = Field(10.0, ge=2, le=600)

    @field_validator("url")
    @classmethod
    def _engine(cls, url: str) -> str:
        if url and not url.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be empty (SQLite in the data dir) or a postgresql:// URL")
        return url

    @property
    def shared(self) -> bool:
        return bool(self.url)


class StateSettings(_Strict):
    """Where the hot state lives: empty `url` is this process's memory (the default); `redis://…` is a Redis
    (or Valkey) server shared by the fleet: rate-limit windows, reservations, idempotency claims, cooldowns,
    the answer cache and invalidation (server/state/)."""

    url: str = ""
    # A reservation whose process stops renewing it (the process died) expires after this long.
    hold_ttl_s: float = Field(30.0, ge=3, le=3600)
    # Each call to Redis gives up after this long; a request that cannot reach it is refused with 503.
    timeout_ms: int = Field(500, ge=10, le=60_000)
    # How often one process of the fleet reconciles Redis's budget totals with the store (server/state/reconcile.py).
    reconcile_s: float = Field(5.0, ge=0.2, le=3600)

    @field_validator("url")
    @classmethod
    def _engine(cls, url: str) -> str:
        if url and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be empty (this process's memory) or a redis://, rediss:// or unix:// URL")
        return url

    @property
    def shared(self) -> bool:
        return bool(self.url)
