"""How long `gatewayctl` takes to start: `--help`, and simple admin commands against a live gateway.

Each command runs `--runs` times (after one warm-up run that fills the OS page cache); we print the
median and best wall-clock time and the median CPU time (user + system, from wait4, so contention
from other processes on a shared machine shows as wall minus CPU). Targets from the issue: `--help`
under 300 ms, a simple admin command under 500 ms (median wall). Nothing is asserted: this prints
figures and the machine they were measured on. BENCH_GATEWAYCTL runs another build (e.g.
"python -m gatewayctl" with PYTHONPATH at an older checkout) to compare in the same conditions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import Children, SetupError, child_env, gatewayctl_cmd, machine, setup_gateway, start_upstream

TARGETS_MS = {"--help": 300.0, "admin": 500.0}
CASES: list[tuple[str, list[str], str | None]] = [
    ("gatewayctl --help", ["--help"], "--help"),
    ("gatewayctl --version", ["--version"], None),
    ("gatewayctl projects list", ["projects", "list"], "admin"),
    ("gatewayctl keys list --json", ["keys", "list", "--json"], "admin"),
    ("gatewayctl usage --by model", ["usage", "--by", "model"], "admin"),
]


def _once(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, int]:
    """(wall ms, CPU ms, exit code) of one run; CPU from the child's own rusage."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - started) * 1000
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, (usage.ru_utime + usage.ru_stime) * 1000, proc.returncode


def measure(args: list[str], env: dict[str, str], cwd: Path, runs: int) -> dict[str, Any]:
    cmd = gatewayctl_cmd() + args
    _once(cmd, env, cwd)  # warm-up: page cache, .pyc files
    samples = [_once(cmd, env, cwd) for _ in range(runs)]
    walls, cpus, codes = zip(*samples, strict=True)
    return {
        "median_ms": round(statistics.median(walls), 1),
        "best_ms": round(min(walls), 1),
        "cpu_median_ms": round(statistics.median(cpus), 1),
        "exit_codes": sorted(set(codes)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per command (default 10)")
    parser.add_argument("--json", action="store_true", help="also print every figure as JSON")
    options = parser.parse_args(argv)
    children = Children()
    results: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="gateway-startup-") as folder:
            tmp = Path(folder)
            upstream_port, _ = start_upstream(children, tmp)
            gateway = setup_gateway(children, tmp, upstream_port, limits=False)
            env = child_env(GATEWAY_URL=gateway["url"], GATEWAY_ADMIN_TOKEN=gateway["admin_token"])
            for label, args, target in CASES:
                results[label] = measure(args, env, tmp, options.runs) | {"target": target}
    except SetupError as exc:
        print(f"setup failed: {exc}", file=sys.stderr)
        return 1
    finally:
        children.stop_all()
    _print(results, options.runs)
    if options.json:
        print(json.dumps({"machine": machine(), "runs": options.runs, "results": results}, indent=2))
    return 0


def _print(results: dict[str, Any], runs: int) -> None:
    info = machine()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"gatewayctl start-up, {runs} runs each: {info['cpu']}, {info['usable_cores']} cores, {info['python']}")
    print(f"load average at the end: {load:.2f} (wall time minus CPU time is mostly waiting for a core)")
    print(f"{'command':34} {'median':>9} {'best':>9} {'CPU':>9}  target")
    for label, figures in results.items():
        target = figures["target"]
        verdict = ""
        if target:
            limit = TARGETS_MS[target]
            verdict = f"< {limit:.0f} ms {'met' if figures['median_ms'] < limit else 'NOT met'}"
        failed = "" if figures["exit_codes"] == [0] else f"  (exit codes {figures['exit_codes']})"
        print(
            f"{label:34} {figures['median_ms']:>7.1f}ms {figures['best_ms']:>7.1f}ms"
            f" {figures['cpu_median_ms']:>7.1f}ms  {verdict}{failed}"
        )


if __name__ == "__main__":
    sys.exit(main())
