"""`gatewayctl doctor` against a real server whose data dir is on a small tmpfs: all green, then a stopped
provider and a full disk are each reported as a FAIL line naming them, with exit 1 (and `--json`).
Mounting a tmpfs needs root; elsewhere the test is skipped and says so."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import UPSTREAM_KEY, upstream_config
from tests.support.gateway import GatewayProcess
from tests.upstreams.openai_upstream import start_upstream_process

MIN_FREE_MB = 4


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("doctor's full-disk check needs a small tmpfs, and mounting one needs root and mount(8)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _doctor(gw: GatewayProcess, *extra: str) -> subprocess.CompletedProcess[str]:
    return gw.cli("doctor", "--config", str(gw.config), *extra, check=False)


def _statuses(result: subprocess.CompletedProcess[str]) -> set[str]:
    return {line.split()[0] for line in result.stdout.splitlines()}


def test_doctor_reports_a_stopped_provider_and_a_full_disk(small_disk: Path) -> None:
    up = start_upstream_process()
    config = upstream_config(up) + f"\n[storage]\nmin_free_mb = {MIN_FREE_MB}\nwal_limit_mb = 1\n"
    gw = GatewayProcess(small_disk, config, {"TEST_UPSTREAM_KEY": UPSTREAM_KEY})
    gw.start()
    filler = small_disk / "filler"
    try:
        healthy = _doctor(gw)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        assert _statuses(healthy) == {"ok"}, healthy.stdout

        up.stop()
        stopped = _doctor(gw)
        assert stopped.returncode == 1 and stopped.stderr == "error: 1 check(s) failed: provider up\n"
        [line] = [line for line in stopped.stdout.splitlines() if line.startswith("FAIL")]
        assert "provider up" in line and "cannot connect" in line

        free = shutil.disk_usage(small_disk).free
        with filler.open("wb") as out:
            out.write(b"\0" * (free - (1 << 20)))  # leave 1 MiB: below the 4 MiB floor
        time.sleep(1.0)  # the writer probes the disk every 250 ms while idle
        full = _doctor(gw, "--json")
        assert full.returncode == 1
        report = json.loads(full.stdout)
        status = {check["name"]: check for check in report["checks"]}
        assert report["ok"] is False
        assert status["disk"]["status"] == "FAIL" and "below storage.min_free_mb" in status["disk"]["detail"]
        assert status["store"]["status"] == "FAIL" and "disk almost full" in status["store"]["detail"]
        assert status["provider up"]["status"] == "FAIL"
        assert status["config"]["status"] == status["database"]["status"] == status["clock"]["status"] == "ok"
    finally:
        filler.unlink(missing_ok=True)
        gw.stop()
        up.stop()
