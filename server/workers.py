"""`gatewayctl serve --workers N`: N gateway processes on one listening socket, under one supervisor.

Why a supervisor of our own rather than uvicorn's `workers=`: uvicorn's process manager runs a plain
`uvicorn.Server` in each child, so our `GatewayServer` (server/serving.py: SIGHUP reload between
RELOADING=1 and READY=1, graceful drain with its grace and margin, sd_notify READY/STOPPING/WATCHDOG)
would be lost, and it treats SIGHUP as "restart the workers", dropping their streams. Here every worker
is a fresh interpreter running the same `gatewayctl serve` as one process does, so each keeps all of it.

Why one shared socket rather than SO_REUSEPORT: the supervisor binds once (a port in use fails before
anything starts) and hands the socket to every worker; the kernel gives each connection to whichever
worker accepts first, so a busy worker takes less. With SO_REUSEPORT each worker would own an accept
queue, connections hashed to a worker that is draining or stuck would wait or be reset, and a restarted
worker would re-bind (a window where the hash changes).

systemd: a unit's NOTIFY_SOCKET speaks for the main process only, so each worker notifies a datagram
socket of the supervisor's, and the supervisor speaks for the service: READY=1 once every worker is
ready; on SIGHUP, RELOADING=1, the signal to every worker, READY=1 once each has reloaded; STOPPING=1 on
SIGTERM (each worker drains as a single process does); WATCHDOG=1 only while every worker pings (a stuck
worker stops the pings and systemd restarts the service). A worker that dies unexpectedly is logged and
started again (one that dies before it was ever ready stops them all: it would only die again). A clean
stop exits 0 when every worker exited 0.
"""

from __future__ import annotations

import logging
import os
import selectors
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from server.sdnotify import monotonic_usec, notify, watchdog_interval

log = logging.getLogger("gateway")
FD_ENV = "GATEWAY_WORKER_FD"  # set in a worker: the inherited listening socket's descriptor
RESTART_PAUSE_S = 1.0


@dataclass
class Worker:
    index: int
    notify_path: Path
    inbox: socket.socket
    proc: subprocess.Popen[bytes] | None = None
    ready: bool = False
    started: bool = False  # was ready once: a worker that dies before that would only die again
    last_ping: float = field(default_factory=time.monotonic)


class Supervisor:
    """Start `argv` `count` times with the listening socket, relay their notifications, stop them cleanly."""

    def __init__(self, argv: Sequence[str], sock: socket.socket, count: int) -> None:
        self._argv = list(argv)
        self._sock = sock
        self._dir = Path(tempfile.mkdtemp(prefix="gw-workers-"))
        self._selector = selectors.DefaultSelector()
        self._workers: list[Worker] = []
        self._stopping = False
        self._reloading = False
        self._signals: list[int] = []
        self._watchdog_s = watchdog_interval()
        for index in range(count):
            path = self._dir / f"worker-{index}.sock"
            inbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            inbox.bind(str(path))
            inbox.setblocking(False)
            worker = Worker(index, path, inbox)
            self._selector.register(inbox, selectors.EVENT_READ, worker)
            self._workers.append(worker)

    def _spawn(self, worker: Worker) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID")}
        env.update({FD_ENV: str(self._sock.fileno()), "NOTIFY_SOCKET": str(worker.notify_path)})
        env["GATEWAY_WORKER_INDEX"] = str(worker.index)
        if self._watchdog_s is not None:  # workers ping twice as often as the service must
            env["WATCHDOG_USEC"] = str(int(os.environ["WATCHDOG_USEC"]) // 2)
        worker.ready = False
        worker.last_ping = time.monotonic()
        worker.proc = subprocess.Popen(self._argv, env=env, pass_fds=(self._sock.fileno(),))
        log.info("worker %d started (pid %d)", worker.index, worker.proc.pid)

    def run(self) -> int:
        """Until every worker has stopped after SIGTERM/SIGINT; the exit status (0: every one was clean)."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        try:
            for worker in self._workers:
                self._spawn(worker)
            return self._loop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for worker in self._workers:
                worker.inbox.close()
                worker.notify_path.unlink(missing_ok=True)
            self._dir.rmdir()

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals.append(signum)

    def _loop(self) -> int:
        next_ping = time.monotonic()
        failed = False
        while True:
            while self._signals:
                self._handle(self._signals.pop(0))
            for key, _ in self._selector.select(timeout=0.1):
                worker: Worker = key.data
                try:
                    while True:
                        self._message(worker, worker.inbox.recv(4096).decode(errors="replace"))
                except BlockingIOError:
                    pass
            for worker in self._workers:
                assert worker.proc is not None
                code = worker.proc.poll()
                if code is None:
                    continue
                if self._stopping:
                    failed |= code != 0
                    continue
                if not worker.started:
                    log.error("worker %d exited with %s before it was ready; stopping", worker.index, code)
                    failed = True
                    self._handle(signal.SIGTERM)
                    continue
                log.error("worker %d (pid %d) exited with %s; starting it again", worker.index, worker.proc.pid, code)
                time.sleep(RESTART_PAUSE_S)
                self._spawn(worker)
            if self._stopping and all(w.proc is not None and w.proc.poll() is not None for w in self._workers):
                return 1 if failed else 0
            if self._watchdog_s is not None and time.monotonic() >= next_ping:
                next_ping = time.monotonic() + self._watchdog_s
                if all(time.monotonic() - w.last_ping < 2 * self._watchdog_s for w in self._workers):
                    notify("WATCHDOG=1")

    def _handle(self, signum: int) -> None:
        if signum == signal.SIGHUP:
            if self._stopping:
                return
            self._reloading = True
            notify("RELOADING=1", monotonic_usec(), "STATUS=reloading the config in every worker")
            for worker in self._workers:
                worker.ready = False
        else:
            if not self._stopping:
                notify("STOPPING=1", "STATUS=draining every worker")
            self._stopping = True
        for worker in self._workers:
            if worker.proc is not None and worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGHUP if signum == signal.SIGHUP else signal.SIGTERM)

    def _message(self, worker: Worker, text: str) -> None:
        fields = dict(line.partition("=")[::2] for line in text.splitlines() if "=" in line)
        if "WATCHDOG" in fields:
            worker.last_ping = time.monotonic()
        if fields.get("READY") == "1" and not worker.ready:
            worker.ready = worker.started = True
            worker.last_ping = time.monotonic()
            if all(w.ready for w in self._workers) and not self._stopping:
                what = "reloaded" if self._reloading else "ready"
                self._reloading = False
                log.info("every worker %s (%d)", what, len(self._workers))
                notify("READY=1", f"STATUS=serving with {len(self._workers)} workers")
