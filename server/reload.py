"""Reload: read config.toml again and put what it drives in force without a restart.

SIGHUP (`systemctl reload gateway`) and `POST /admin/v1/reload` (`gatewayctl reload`) both land here.
The file is read and validated whole, beside the running config; only then is a new generation (models
and their price cards, targets, providers, router, plans, limits; see server/generation.py) built and
swapped in, in one step on the event loop. Calls in flight finish on the generation they started with
(targets, price card, timeouts), and each usage row records the price card its charge used. Keys that a
reload cannot apply (the listener, storage, billing, Stripe) are named in the answer as needing a restart
and keep their running values. Reloads run one at a time.

Failure behaviour: a file that cannot be read or does not validate, or that would leave a project on a
plan that no longer exists, raises `ReloadRefused` with a one-line reason, and nothing changes: the
running generation stays in force.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from pydantic import BaseModel

from server.gateway import Gateway
from server.generation import build
from server.settings import RELOADABLE, ConfigError, Settings, load_settings, restart_needed

log = logging.getLogger("gateway.reload")


class ReloadRefused(Exception):
    """The new config cannot be used; the message is one line and the running config stays."""


async def reload(gw: Gateway) -> dict[str, Any]:
    """Re-read the config file; the answer says what changed, what needs a restart and how long it took."""
    async with gw.reload_lock:
        started = time.perf_counter()
        running = gw.settings
        path = running.config_file
        if path is None:
            raise ReloadRefused("the gateway was started without a config file; there is nothing to re-read")
        try:
            loaded = await asyncio.to_thread(load_settings, path)
        except ConfigError as exc:
            raise ReloadRefused(str(exc)) from None
        projects = gw.snapshot.projects_by_id.values()
        orphaned = sorted({p.plan for p in projects if p.plan and p.plan not in loaded.plans})
        if orphaned:
            raise ReloadRefused(f"plans: {', '.join(orphaned)} removed but projects are on them (move them first)")
        merged = running.model_copy(update={name: getattr(loaded, name) for name in RELOADABLE})
        current = gw.generations.current
        try:
            generation = build(merged, current.number + 1, gw.shares, gw.generations.carried(), gw.state.health)
        except Exception as exc:  # a provider that cannot be constructed: nothing was swapped
            raise ReloadRefused(f"providers: {exc}") from None
        changes = describe(running, merged)
        gw.swap(generation)
        answer = {
            "generation": generation.number,
            "config": str(path),
            "changed": changes,
            "restart_needed": restart_needed(running, loaded),
            "in_flight_on_previous": current.calls,
            "took_ms": round((time.perf_counter() - started) * 1000, 2),
        }
    log.info("config reloaded: %s", summary(answer))
    return answer


def describe(old: Settings, new: Settings) -> dict[str, Any]:
    """Names added, removed and changed per list or table the config drives; flags for the sections."""
    changes: dict[str, Any] = {}
    for section in ("models", "providers"):
        changes[section] = _named(
            {item.name: item for item in getattr(old, section)}, {item.name: item for item in getattr(new, section)}
        )
    changes["plans"] = _named(old.plans, new.plans)
    changes["routing"] = old.routing != new.routing
    changes["limits"] = old.limits != new.limits
    return changes


def _named(old: dict[str, BaseModel], new: dict[str, BaseModel]) -> dict[str, list[str]]:
    return {
        "added": sorted(set(new) - set(old)),
        "removed": sorted(set(old) - set(new)),
        "changed": sorted(name for name in set(old) & set(new) if old[name] != new[name]),
    }


def summary(answer: dict[str, Any]) -> str:
    """One log line: generation, time, what changed (+added -removed ~changed), what needs a restart."""
    parts = []
    for section in ("models", "providers", "plans"):
        found = answer["changed"][section]
        names = [f"+{n}" for n in found["added"]] + [f"-{n}" for n in found["removed"]]
        names += [f"~{n}" for n in found["changed"]]
        if names:
            parts.append(f"{section} {' '.join(names)}")
    parts += [section for section in ("routing", "limits") if answer["changed"][section]]
    text = f"generation {answer['generation']} in {answer['took_ms']} ms; " + ("; ".join(parts) or "no changes")
    if answer["restart_needed"]:
        text += f"; needs a restart to apply: {', '.join(answer['restart_needed'])}"
    return text
