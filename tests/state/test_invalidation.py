"""Invalidation over Redis pub/sub between OS processes: a key revoked on one process is refused by another
within 1 s; a listener that was away replays what it missed from the log; rotation and budgets travel."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from types import SimpleNamespace
from typing import Any

import pytest

from server.errors import GatewayError
from server.keys import authenticate, hash_secret
from server.scopes import KeyScopes
from server.snapshot import KeyEntry, ProjectEntry, Snapshot
from server.state.changes import apply_change, key_message, project_message
from server.state.connection import Connection
from server.state.invalidation import Bus
from tests.support.services import Redis

SECRET = "gw_live_" + "s" * 40


def _snapshot() -> tuple[Snapshot, KeyEntry, ProjectEntry]:
    snapshot = Snapshot()
    project = ProjectEntry(id="prj_1", name="one", plan=None, billing="postpaid", created_ms=1)
    key = KeyEntry("key_1", "prj_1", None, "gw_live_ssss", hash_secret(SECRET), KeyScopes(), 1)
    snapshot.put_project(project)
    snapshot.put_key(key)
    return snapshot, key, project


def _gateway(snapshot: Snapshot) -> Any:
    """What `apply_change` touches of a gateway: its snapshot, its realtime sessions, its router's health."""
    ended: list[str] = []
    router = SimpleNamespace(health=SimpleNamespace())
    return SimpleNamespace(
        snapshot=snapshot,
        sessions=SimpleNamespace(end_key=ended.append, ended=ended),
        generations=SimpleNamespace(current=SimpleNamespace(router=router)),
    )


RECEIVER = """
import asyncio, sys, time
from tests.state.test_invalidation import SECRET, _gateway, _snapshot
from server.errors import GatewayError
from server.keys import authenticate
from server.state.changes import apply_change
from server.state.connection import Connection
from server.state.invalidation import Bus

async def main():
    snapshot, _, _ = _snapshot()
    gw = _gateway(snapshot)
    bus = Bus(Connection(sys.argv[1], 2000), lambda message: apply_change(gw, message))
    bus.mark()
    bus.start()
    await asyncio.sleep(0.3)
    print("ready", flush=True)
    while True:
        try:
            authenticate(snapshot, SECRET, int(time.time() * 1000))
        except GatewayError as exc:
            print(exc.code, time.time(), gw.sessions.ended, flush=True)
            return
        await asyncio.sleep(0.002)

asyncio.run(main())
"""


@pytest.fixture()
def redis_url(redis_server: Redis) -> str:
    redis_server.flush()
    return redis_server.url


def test_a_key_revoked_on_one_process_is_refused_by_another_within_a_second(redis_url: str) -> None:
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, redis_url], stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout is not None and receiver.stdout.readline().strip() == "ready"
        _, key, _ = _snapshot()
        bus = Bus(Connection(redis_url, 2000), lambda message: None)
        key.revoked_ms = int(time.time() * 1000)
        sent = time.time()
        bus.publish(key_message(key))
        code, refused_at, ended = receiver.stdout.readline().split(" ", 2)
        assert code == "key_revoked"
        assert float(refused_at) - sent < 1.0
        assert json.loads(ended.replace("'", '"')) == ["key_1"]  # its realtime sessions end too
    finally:
        receiver.kill()
        receiver.wait(5)


def test_a_listener_that_was_away_replays_what_it_missed(redis_url: str) -> None:
    snapshot, key, project = _snapshot()
    gw = _gateway(snapshot)
    sender = Bus(Connection(redis_url, 2000), lambda message: None)
    away = Bus(Connection(redis_url, 2000), lambda message: apply_change(gw, message))
    away.mark()  # where it was when it loaded its store
    rotated = KeyEntry(**{n: getattr(key, n) for n in KeyEntry.__slots__})  # type: ignore[attr-defined]
    rotated.key_hash = hash_secret(SECRET + "new")
    rotated.scopes = KeyScopes.parse({"rpm": 5, "monthly_budget_micro": 1000})
    sender.publish(key_message(rotated))
    changed = ProjectEntry(**{n: getattr(project, n) for n in ProjectEntry.__slots__})  # type: ignore[attr-defined]
    changed.plan, changed.monthly_budget_micro = "standard", 5_000_000
    sender.publish(project_message(changed))

    async def catch_up() -> None:
        away.start()
        deadline = time.monotonic() + 2
        while away.applied < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await away.stop()

    asyncio.run(catch_up())
    assert away.applied == 2
    now = int(time.time() * 1000)
    with pytest.raises(GatewayError) as info:
        authenticate(snapshot, SECRET, now)  # rotated without grace: the old secret is refused at once
    assert info.value.code == "invalid_api_key"
    entry = authenticate(snapshot, SECRET + "new", now)
    assert entry is key and entry.scopes.rpm == 5 and entry.scopes.monthly_budget_micro == 1000
    assert project.plan == "standard" and project.monthly_budget_micro == 5_000_000


def test_provider_failures_are_counted_across_processes_and_a_cooldown_reaches_all(redis_url: str) -> None:
    from server.settings import RoutingSettings
    from server.state.cooldowns import SharedHealth

    routing = RoutingSettings(cooldown_failures=3, cooldown_seconds=30)
    connections = [Connection(redis_url, 2000), Connection(redis_url, 2000)]
    buses: list[Bus] = []
    healths: list[SharedHealth] = []
    for connection in connections:
        gw = _gateway(Snapshot())
        bus = Bus(connection, lambda message, gw=gw: apply_change(gw, message))
        health = SharedHealth(
            routing,
            connection,
            lambda p, s, bus=bus: bus.publish({"op": "cool", "provider": p, "until": time.time() + s}),
        )
        gw.generations.current.router.health = health
        buses.append(bus)
        healths.append(health)

    async def scenario() -> None:
        for bus in buses:
            bus.mark()
            bus.start()
        await asyncio.sleep(0.2)
        now = time.monotonic()
        healths[0].failed("up", now)
        healths[1].failed("up", now)
        assert not healths[0].cooling("up", now) and not healths[1].cooling("up", now)
        healths[1].failed("up", now)  # the third in a row, fleet-wide
        assert healths[1].cooling("up", now)
        deadline = time.monotonic() + 1
        while not healths[0].cooling("up", time.monotonic()) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert healths[0].cooling("up", time.monotonic())
        for bus in buses:
            await bus.stop()

    asyncio.run(scenario())
