"""What the config drives, as one unit a reload swaps: models and their price cards, providers and their
settings, the router, plans and limits.

A call takes the current generation when it starts (`RequestPath.start`) and keeps it to its end, so it
finishes on the config it started with: its targets, its price card, its provider's timeouts. A reload
builds a whole new generation beside the running one and swaps it in one synchronous step on the event
loop (`Generations.swap`), so no request ever sees half of each. Providers whose settings did not change
are carried over (their pools stay warm); the others are closed once the last call of every generation
that used them has ended, never under a call in flight.

Failure behaviour: building a generation raises (a provider that cannot be constructed) before anything
is swapped; the running generation stays.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from server.providers.base import Provider
from server.providers.registry import build_providers
from server.routing import ConnectionShares, ProviderHealth, Router
from server.settings import LimitSettings, PlanSettings, ProviderSettings, RoutingSettings, Settings
from server.snapshot import ModelEntry, model_entries

log = logging.getLogger("gateway.reload")


@dataclass(eq=False)
class Generation:
    """One config's worth of live objects; `calls` counts the calls that started on it and have not ended."""

    number: int
    settings: Settings
    models: dict[str, ModelEntry]
    providers: dict[str, Provider]
    provider_settings: dict[str, ProviderSettings]
    router: Router
    calls: int = 0
    retired: bool = False
    _owner: Generations | None = field(default=None, repr=False)

    @property
    def plans(self) -> dict[str, PlanSettings]:
        return self.settings.plans

    @property
    def limits(self) -> LimitSettings:
        return self.settings.limits

    def enter(self) -> None:
        self.calls += 1

    def leave(self) -> None:
        self.calls -= 1
        if self.retired and self.calls == 0 and self._owner is not None:
            self._owner.idle(self)


def build(
    settings: Settings,
    number: int,
    shares: ConnectionShares,
    carried: Iterable[tuple[ProviderSettings, Provider]] = (),
    health: Callable[[RoutingSettings], ProviderHealth] | None = None,
) -> Generation:
    """A generation for `settings`; a provider whose settings equal one in `carried` reuses its object;
    `health` makes the router's provider health (shared cooldowns on a fleet: server/state/cooldowns.py)."""
    reusable = list(carried)
    providers: dict[str, Provider] = {}
    fresh = [p for p in settings.providers if not any(old == p for old, _ in reusable)]
    built = build_providers(fresh)
    for spec in settings.providers:
        same = next((provider for old, provider in reusable if old == spec), None)
        providers[spec.name] = same if same is not None else built[spec.name]
    shares.limit({p.name: p.project_share for p in settings.providers})
    return Generation(
        number=number,
        settings=settings,
        models=model_entries(settings),
        providers=providers,
        provider_settings={p.name: p for p in settings.providers},
        router=Router(providers, settings.routing, shares, health(settings.routing) if health else None),
    )


class Generations:
    """The current generation and the retired ones that still have calls in flight."""

    def __init__(self, first: Generation) -> None:
        self.current = first
        first._owner = self
        self._draining: list[Generation] = []
        self._closing: set[asyncio.Task[None]] = set()

    def carried(self) -> list[tuple[ProviderSettings, Provider]]:
        gen = self.current
        return [(gen.provider_settings[name], provider) for name, provider in gen.providers.items()]

    def swap(self, new: Generation) -> Generation:
        """Make `new` current (one synchronous step); the old one retires and is released once idle."""
        old, self.current = self.current, new
        new._owner = self
        old.retired = True
        self._draining.append(old)
        if old.calls == 0:
            self.idle(old)
        return old

    def idle(self, gen: Generation) -> None:
        """A retired generation's last call ended: close the providers no live generation uses any more."""
        if gen in self._draining:
            self._draining.remove(gen)
        live = {id(p) for g in (self.current, *self._draining) for p in g.providers.values()}
        unused = [p for p in gen.providers.values() if id(p) not in live]
        if unused:
            task = asyncio.get_running_loop().create_task(_close(unused, gen.number))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    @property
    def draining(self) -> int:
        """Calls still running on retired generations."""
        return sum(g.calls for g in self._draining)

    async def close(self) -> None:
        """Close every provider of every generation (at shutdown, after the calls have ended)."""
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        seen: dict[int, Provider] = {}
        for gen in (self.current, *self._draining):
            for provider in gen.providers.values():
                seen.setdefault(id(provider), provider)
        await _close(list(seen.values()), None)


async def _close(providers: list[Provider], number: int | None) -> None:
    for provider in providers:
        try:
            await provider.aclose()
        except Exception as exc:  # a pool that fails to close must not stop the others
            log.warning("closing provider %s failed: %r", provider.name, exc)
    if number is not None:
        log.info("closed %d provider(s) replaced after generation %d ended", len(providers), number)
