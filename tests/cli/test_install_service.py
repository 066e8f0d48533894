"""`gatewayctl install-service` writes the unit and the secrets file with this installation's paths, and a
second run changes nothing; the unit passes `systemd-analyze verify` and scores OK (at most 2.0) on
`systemd-analyze security` where systemd's tools exist (skipped, saying so, elsewhere); the shipped
packaging/gateway.service is the unit rendered for the README's default paths."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from gatewayctl.service_unit import UnitSpec, render
from tests.support.gateway import GATEWAYCTL, run_cli

REPO = Path(__file__).resolve().parents[2]
ANALYZE = shutil.which("systemd-analyze")
needs_systemd = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed on this machine")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, object]]:
    home = tmp_path_factory.mktemp("install")
    directory, units = home / "etc", home / "units"
    run_cli("init", "--dir", str(directory), "--json")
    user = pwd.getpwuid(os.geteuid()).pw_name
    args = ["install-service", "--dir", str(directory), "--unit-dir", str(units), "--user", user, "--no-start"]
    first = json.loads(run_cli(*args, "--json").stdout)
    return directory, units, {"first": first, "again": json.loads(run_cli(*args, "--json").stdout), "user": user}


def test_the_unit_and_env_file_carry_this_installation_and_a_second_run_changes_nothing(
    installed: tuple[Path, Path, dict[str, object]],
) -> None:
    directory, units, runs = installed
    first, again = runs["first"], runs["again"]
    assert first["unit_changed"] and first["env_created"] and not first["user_created"]  # type: ignore[index]
    assert not again["unit_changed"] and not again["env_created"]  # type: ignore[index]
    unit = (units / "gateway.service").read_text()
    assert f"ExecStart={GATEWAYCTL} serve --config {directory / 'config.toml'}\n" in unit
    assert f"ReadWritePaths={directory / 'data'}\n" in unit and f"EnvironmentFile=-{directory / 'env'}\n" in unit
    assert f"User={runs['user']}\n" in unit and "Type=notify\n" in unit and "ExecReload=/bin/kill -HUP $MAINPID" in unit
    assert "TimeoutStopSec=45\n" in unit  # the 30 s drain grace of the example config, plus the margin
    env = directory / "env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert "# OPENAI_API_KEY=" in env.read_text() or "# STRIPE_SECRET_KEY=" in env.read_text()


def test_the_shipped_unit_is_the_render_for_the_default_paths() -> None:
    assert (REPO / "packaging" / "gateway.service").read_text() == render(UnitSpec.defaults())


@needs_systemd
def test_systemd_analyze_verify_accepts_the_unit(installed: tuple[Path, Path, dict[str, object]]) -> None:
    _, units, _ = installed
    done = subprocess.run([ANALYZE, "verify", str(units / "gateway.service")], capture_output=True, text=True)  # type: ignore[list-item]
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


@needs_systemd
def test_systemd_analyze_security_rates_the_unit_ok() -> None:
    done = subprocess.run(
        [ANALYZE, "security", "--offline=true", str(REPO / "packaging" / "gateway.service")],  # type: ignore[list-item]
        capture_output=True,
        text=True,
    )
    if "Unknown option" in done.stderr or "unrecognized option" in done.stderr:
        pytest.skip(f"this systemd-analyze cannot rate a unit file offline: {done.stderr.strip()}")
    match = re.search(r"Overall exposure level for gateway\.service: (\d+\.\d+) (\w+)", done.stdout)
    assert match, done.stdout[-500:] + done.stderr
    assert float(match.group(1)) <= 2.0 and match.group(2) == "OK", match.group(0)
