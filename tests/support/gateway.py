"""Run the real gateway as a process: `gatewayctl init` then `gatewayctl serve`, on 127.0.0.1.

Tests build state through the CLI (the admin API) and call the server with the official SDKs.
Processes are ended only by their own PID.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

GATEWAYCTL = str(Path(sys.executable).parent / "gatewayctl")

MOCK_CONFIG = """
[plans.default]
rpm = { chat = 100000, embeddings = 100000 }

[plans.standard]
rpm = { chat = 60, embeddings = 120, images = 20 }
tpm = 1000000

[[providers]]
name = "mock"
kind = "mock"

[[models]]
name = "mock-chat"
targets = ["mock:mock-chat"]
price = { input = 1.0, output = 2.0 }

[[models]]
name = "mock-embed"
targets = ["mock:mock-embed"]
price = { input = 0.1 }
capabilities = ["embeddings"]
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_cli(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [GATEWAYCTL, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=60
    )
    if check and result.returncode != 0:
        raise AssertionError(f"gatewayctl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


class GatewayProcess:
    def __init__(
        self, directory: Path, config_body: str, extra_env: dict[str, str] | None = None, server_extra: str = ""
    ) -> None:
        self.dir = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = extra_env or {}
        self.config = directory / "config.toml"
        self.config.write_text(
            f'[server]\nhost = "127.0.0.1"\nport = {self.port}\ndata_dir = "data"\nmax_body_bytes = 65536\n'
            + server_extra
            + "\n"
            + config_body
        )
        init = json.loads(run_cli("init", "--dir", str(directory), "--json").stdout)
        self.admin_token: str = init["admin_token"]
        self.database = Path(init["database"])
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = directory / "serve.log"

    @property
    def env(self) -> dict[str, str]:
        return {"GATEWAY_URL": self.url, "GATEWAY_ADMIN_TOKEN": self.admin_token, **self.extra_env}

    def start(self, timeout: float = 20.0, preexec_fn: Callable[[], None] | None = None) -> GatewayProcess:
        """Start `gatewayctl serve`; `preexec_fn` runs in the child before exec (e.g. to lower its limits)."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [GATEWAYCTL, "serve", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.extra_env},
                preexec_fn=preexec_fn,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"gateway did not become ready: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env=self.env, check=check)

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def new_key(self, project: str) -> str:
        projects = {p["name"] for p in self.cli_json("projects", "list")}
        if project not in projects:
            self.cli_json("projects", "create", project)
        return str(self.cli_json("keys", "create", "--project", project)["key"])

    def admin(self, path: str) -> Any:
        response = httpx.get(f"{self.url}/admin/v1{path}", headers={"authorization": f"Bearer {self.admin_token}"})
        response.raise_for_status()
        return response.json()


def start_fleet(
    directories: list[Path], config_body: str, extra_env: dict[str, str] | None = None
) -> list[GatewayProcess]:
    """Gateway processes of one installation on a shared store, each with a data dir of its own (as on
    machines of their own): the first is initialised as usual; the others get a copy of its ledger key (one
    ledger) and its admin token (kept in the shared store). Whatever started is stopped if one fails."""
    processes: list[GatewayProcess] = []
    try:
        for directory in directories:
            if processes:
                shutil.copyfile(processes[0].dir / "ledger.key", directory / "ledger.key")
            gw = GatewayProcess(directory, config_body, extra_env)
            if processes:
                gw.admin_token = processes[0].admin_token
            processes.append(gw.start())
    except BaseException:
        for gw in processes:
            gw.stop()
        raise
    return processes
