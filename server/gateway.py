"""The running gateway's resources, owned by the app lifespan: settings, store, snapshot, providers."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from server.latency import LatencyBands
from server.providers.base import Provider
from server.providers.registry import build_providers
from server.settings import Settings
from server.snapshot import Snapshot
from server.store.sqlite.store import SqliteStore

log = logging.getLogger("gateway")


@dataclass
class Gateway:
    settings: Settings
    store: SqliteStore
    snapshot: Snapshot
    providers: dict[str, Provider]
    latency: LatencyBands = field(default_factory=LatencyBands)

    @classmethod
    async def start(cls, settings: Settings) -> Gateway:
        store = SqliteStore(settings.database_path, settings.storage)
        loaded = await store.open()
        if loaded["interrupted"]:
            log.warning("closed %d requests interrupted by a crash", loaded["interrupted"])
        snapshot = Snapshot.build(settings, loaded)
        return cls(settings=settings, store=store, snapshot=snapshot, providers=build_providers(settings.providers))

    async def close(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()
        await self.store.close()
