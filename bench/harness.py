"""Process plumbing for ``bench/run``: ports, the two child processes, ``gatewayctl``, the machine.

Every child is started here and stopped by its PID (SIGTERM, then SIGKILL after a grace period);
waits are bounded. Nothing here measures anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

BENCH_DIR = Path(__file__).resolve().parent
UPSTREAM_KEY = "sk-bench"

CONFIG = """\
[server]
host = "127.0.0.1"
port = {port}
data_dir = "data"

[storage]
synchronous = "FULL"

[[providers]]
name = "up"
kind = "openai"
base_url = "http://127.0.0.1:{upstream_port}/v1"
api_key_env = "BENCH_UPSTREAM_KEY"

[[models]]
name = "bench-model"
targets = ["up:bench-model"]
price = {{ input = 0.15, output = 0.60 }}
"""

# The load comes from one IP: lift the per-IP safety net so it measures the check, not refusals.
LIMITS_CONFIG = """
[limits]
ip_requests = 100000000
"""


class SetupError(RuntimeError):
    """The bench could not set up what it measures (the message says what and shows the output)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    """The environment for children: no inherited GATEWAY_* overrides, no proxy for loopback,
    and a null keyring so a bench run never writes to the user's real keyring."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    no_proxy = ",".join(x for x in (env.get("NO_PROXY", ""), "127.0.0.1,localhost") if x)
    env.update(NO_PROXY=no_proxy, no_proxy=no_proxy, PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")
    env.update(extra)
    return env


class Children:
    """The processes this run started, each stopped by its own PID."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.logs: list[IO[bytes]] = []

    def start(self, name: str, cmd: list[str], log: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
        out = log.open("wb")
        self.logs.append(out)
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        self.procs.append((name, proc))
        return proc

    def stop_all(self) -> None:
        for _, proc in reversed(self.procs):
            stop_pid_tree(proc)
        for out in self.logs:
            out.close()


def descendants(pid: int) -> list[int]:
    """PIDs of the processes below ``pid`` (Linux /proc; empty elsewhere)."""
    found: list[int] = []
    todo = [pid]
    while todo and len(found) < 1000:
        current = todo.pop()
        try:
            text = Path(f"/proc/{current}/task/{current}/children").read_text()
        except OSError:
            continue
        kids = [int(x) for x in text.split()]
        found += kids
        todo += kids
    return found


def stop_pid_tree(proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """SIGTERM ``proc`` (and then any of its own children left over), SIGKILL after ``grace_s``."""
    if proc.poll() is not None:
        return
    kids = descendants(proc.pid)
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(grace_s)
    for pid in kids:  # started by our child for us; stop any that outlived it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SetupError(f"process exited with code {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SetupError(f"nothing listening on port {port} after {timeout_s:g} s")


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_for_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Poll ``url`` until it answers 200, the process dies, or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SetupError(f"gateway exited with code {proc.returncode} before it was ready")
        try:
            with _opener.open(url, timeout=1) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise SetupError(f"{url} not ready after {timeout_s:g} s (last: {last})")


def gatewayctl_cmd() -> list[str]:
    """The venv's gatewayctl; BENCH_GATEWAYCTL overrides it (e.g. "python -m gatewayctl" with
    PYTHONPATH pointing at an older checkout, to measure before/after in the same conditions)."""
    override = os.environ.get("BENCH_GATEWAYCTL")
    if override:
        return shlex.split(override)
    script = Path(sys.executable).parent / "gatewayctl"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gatewayctl"]


def run_ctl(args: list[str], env: dict[str, str], cwd: Path, timeout_s: float = 60) -> dict[str, Any]:
    """Run ``gatewayctl ARGS`` and parse its JSON output (the last JSON object it printed)."""
    cmd = gatewayctl_cmd() + args
    try:
        done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise SetupError(f"`gatewayctl {' '.join(args)}` took more than {timeout_s:g} s") from exc
    if done.returncode != 0:
        raise SetupError(f"`gatewayctl {' '.join(args)}` exited {done.returncode}:\n{done.stderr}{done.stdout}")
    text = done.stdout.strip()
    for start in [0] + [i for i, ch in enumerate(text) if ch == "{" and i > 0]:
        try:
            obj = json.loads(text[start:])
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    raise SetupError(f"`gatewayctl {' '.join(args)}` printed no JSON object:\n{done.stdout}")


def setup_gateway(
    children: Children,
    tmp: Path,
    upstream_port: int,
    *,
    ready_timeout_s: float = 30,
    limits: bool = True,
    server_env: dict[str, str] | None = None,
    extra_config: str = "",
) -> dict[str, Any]:
    """Write the config, init the database, start ``gatewayctl serve``, create a project and key.
    With `limits`, the key has RPM/TPM limits and a monthly budget and the project a budget, so every
    request goes through the rate limiter and the budget reservation (set high enough never to bite).
    `extra_config` (TOML) is appended: more providers and models."""
    port = free_port()
    config = tmp / "config.toml"
    limits_config = LIMITS_CONFIG if limits else ""
    config.write_text(CONFIG.format(port=port, upstream_port=upstream_port) + limits_config + extra_config)
    env_token = secrets.token_urlsafe(24)
    init = run_ctl(["init", "--dir", str(tmp), "--json"], child_env(), tmp)
    token = str(init.get("admin_token") or env_token)
    serve_env = child_env(BENCH_UPSTREAM_KEY=UPSTREAM_KEY, GATEWAY_ADMIN_TOKEN=env_token, **(server_env or {}))
    log = tmp / "gateway.log"
    proc = children.start("gateway", [*gatewayctl_cmd(), "serve", "--config", str(config)], log, serve_env, tmp)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_ready(f"{url}/readyz", proc, ready_timeout_s)
    except SetupError as exc:
        raise SetupError(f"{exc}\n--- gateway.log (tail) ---\n{tail(log)}") from None
    cli_env = child_env(GATEWAY_URL=url, GATEWAY_ADMIN_TOKEN=token)
    run_ctl(["projects", "create", "bench", "--json"], cli_env, tmp)
    scopes = ["--rpm", "10000000", "--tpm", "1000000000", "--monthly-budget", "1000000"] if limits else []
    if limits:
        run_ctl(["budgets", "set", "--project", "bench", "--monthly", "1000000", "--json"], cli_env, tmp)
    key = run_ctl(["keys", "create", "--project", "bench", *scopes, "--json"], cli_env, tmp).get("key")
    if not key:
        raise SetupError("`gatewayctl keys create --json` printed no `key` field")
    return {"url": url, "pid": proc.pid, "key": str(key), "log": log, "admin_token": token}


def start_upstream(children: Children, tmp: Path) -> tuple[int, int]:
    port = free_port()
    cmd = [sys.executable, str(BENCH_DIR / "fast_upstream.py"), "--port", str(port)]
    proc = children.start("upstream", cmd, tmp / "upstream.log", child_env(), tmp)
    wait_for_port(port, proc, 10)
    return port, proc.pid


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def peak_rss_mib(pid: int) -> dict[str, float]:
    """VmHWM (peak RSS) and VmRSS of ``pid``, plus the peaks of its descendants, in MiB."""

    def status(p: int) -> dict[str, float]:
        out: dict[str, float] = {}
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    out[key] = int(value.split()[0]) / 1024
        except OSError:
            pass
        return out

    main = status(pid)
    kids = sum(status(k).get("VmHWM", 0.0) for k in descendants(pid))
    return {
        "peak": round(main.get("VmHWM", 0.0), 1),
        "now": round(main.get("VmRSS", 0.0), 1),
        "children_peak": kids,
    }


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": platform.platform(terse=True),
        "py_spy": shutil.which("py-spy") is not None,
    }
