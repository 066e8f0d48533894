"""Real PostgreSQL and Redis servers for tests and benchmarks, from Debian's packages.

Each is started in a temp dir on a free 127.0.0.1 port and stopped (by its own PID) after. PostgreSQL
refuses to run as root: when we are root, its data dir is given to the unprivileged `nobody` and the
server runs as that user (runuser). Missing binaries fail loudly, naming the package: `make install-test`
installs both, and CI must not skip the tests that need them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or (
        [shutil.which(name)] if shutil.which(name) else []
    )
    if not found:
        raise RuntimeError(f"{name} not found: install Debian's postgresql package (make install-test does)")
    return str(found[-1])


def _as_unprivileged(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "nobody", "--", *argv] if os.geteuid() == 0 else argv


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s")


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class Postgres:
    """A PostgreSQL server of our own; `url()` names a database on it (created by `create_database`)."""

    port: int
    directory: Path
    proc: subprocess.Popen[bytes]
    databases: list[str] = field(default_factory=list)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh, empty database (dropped first if it exists); returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return self.url(name)

    def stop(self) -> None:
        _stop(self.proc, signal.SIGINT)  # fast shutdown
        shutil.rmtree(self.directory, ignore_errors=True)


def start_postgres(durable: bool = False) -> Postgres:
    """initdb in a temp dir and start the server on a free port. `durable=False` (tests) turns fsync off:
    the tests crash gateway processes, never the database server, so nothing they check depends on it."""
    directory = Path(tempfile.mkdtemp(prefix="gw-pg-"))
    data = directory / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(directory, "nobody")
        shutil.chown(data, "nobody")
    subprocess.run(
        _as_unprivileged(
            [_pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]
        ),
        check=True,
        capture_output=True,
    )
    port = free_port()
    settings = [
        "-c", "listen_addresses=127.0.0.1",
        "-c", f"unix_socket_directories={directory}",
        "-c", "max_connections=200",
        "-c", "shared_buffers=128MB",
    ]  # fmt: skip
    if not durable:
        settings += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    log = open(directory / "server.log", "wb")  # noqa: SIM115 (kept open for the server's life)
    proc = subprocess.Popen(
        _as_unprivileged([_pg_bin("postgres"), "-D", str(data), "-p", str(port), *settings]),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    _wait_port(port, proc, "postgres")
    _wait_ready(port)
    return Postgres(port, directory, proc)


def _wait_ready(port: int, timeout: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@dataclass
class Redis:
    """A Redis server of our own, without persistence; can be stopped and started again on its port."""

    port: int
    directory: Path
    proc: subprocess.Popen[bytes] | None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: install Debian's redis-server package (make install-test does)")
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        argv += ["--dir", str(self.directory), "--daemonize", "no"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, self.proc, "redis-server")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None

    def flush(self) -> None:
        import redis

        client = redis.Redis(port=self.port)
        try:
            client.flushall()
        finally:
            client.close()


def start_redis() -> Redis:
    return Redis(free_port(), Path(tempfile.mkdtemp(prefix="gw-redis-")), None).start()
