"""The uvicorn server `gatewayctl serve` runs, with the appliance's signals and systemd notifications.

- READY=1 once the database is open and the socket listens (systemd's `Type=notify`), WATCHDOG=1 from
  the event loop's own tick (a stuck loop stops the pings and systemd restarts the service).
- SIGHUP re-reads config.toml (server/reload.py) between RELOADING=1 and READY=1; a refused file is one
  error line and the running config stays.
- SIGTERM (or Ctrl-C): STOPPING=1, /readyz answers 503, the listening socket closes, and requests and
  streams in flight get `server.shutdown_grace_s` to finish. Then every stream still open ends with an
  error event, recorded and billed for what it delivered (server/streaming/relay.py); a non-stream call
  still waiting on its upstream STOP_MARGIN_S later is cancelled (never answered, so never billed). Then
  the lifespan closes the store: the writer commits what is queued and the WAL is checkpointed. Realtime
  sessions refuse new responses and close (1012, after an error event) once their running responses have
  finished, or when the grace runs out (server/realtime/sessions.py); uvicorn's own immediate close of
  WebSockets is held back for them (server/http_guard/websocket.py). A clean
  stop exits 0 (the SIGTERM handler uvicorn re-raises is a no-op; see gatewayctl serve).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from typing import Any

import uvicorn

from server.gateway import Gateway
from server.reload import ReloadRefused, reload
from server.sdnotify import monotonic_usec, notify, watchdog_interval

log = logging.getLogger("gateway")
STOP_MARGIN_S = 5.0  # after the grace: time for ended streams to write their error event and be recorded


class GatewayServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: Any, grace_s: float) -> None:
        config.timeout_graceful_shutdown = int(grace_s + STOP_MARGIN_S + 0.999)
        super().__init__(config)
        self._app = app
        self._grace_s = grace_s
        self._watchdog_s = watchdog_interval()
        self._next_ping = 0.0
        self._reloading: set[asyncio.Task[None]] = set()

    @property
    def gateway(self) -> Gateway:
        return self._app.state.gateway  # type: ignore[no-any-return]

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.started:
            return
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_hangup)
        notify("READY=1", "STATUS=serving")

    async def on_tick(self, counter: int) -> bool:
        if self._watchdog_s is not None and time.monotonic() >= self._next_ping:
            self._next_ping = time.monotonic() + self._watchdog_s
            notify("WATCHDOG=1")
        return await super().on_tick(counter)

    def _on_hangup(self) -> None:
        task = asyncio.get_running_loop().create_task(self._reload())
        self._reloading.add(task)
        task.add_done_callback(self._reloading.discard)

    async def _reload(self) -> None:
        notify("RELOADING=1", monotonic_usec(), "STATUS=reloading the config")
        try:
            await reload(self.gateway)
        except ReloadRefused as exc:
            log.error("config reload refused; the running config stays in force: %s", exc)
        except Exception:
            log.exception("config reload failed; the running config stays in force")
        finally:
            notify("READY=1", "STATUS=serving")

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        gw = self.gateway
        gw.stopping = True
        gw.settlement.feed.close()  # followers (usage tail) reconnect to the next server
        notify("STOPPING=1", "STATUS=draining")
        generations = gw.generations
        calls = generations.current.calls + generations.draining
        log.info(
            "stopping: %d calls in flight (%d streams); they get %.1f s to finish",
            calls,
            len(gw.streams),
            self._grace_s,
        )
        sessions = gw.sessions.stop(self._grace_s)  # each closes once its running responses finish
        if sessions:
            log.info("stopping: %d realtime sessions close once their responses finish", sessions)
        timer = asyncio.get_running_loop().call_later(self._grace_s, self._grace_over)
        try:
            await super().shutdown(sockets)
        finally:
            timer.cancel()

    def _grace_over(self) -> None:
        ended = self.gateway.streams.stop_all()
        if ended:
            log.warning("grace of %.1f s over: ending %d open streams with an error event", self._grace_s, ended)
