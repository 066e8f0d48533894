"""The shipped nightly backup cron line, run as written (paths moved into a sandbox): it writes a dated,
gzip-compressed, checked backup and removes backups older than 14 days, keeping the newer ones."""

from __future__ import annotations

import gzip
import os
import subprocess
import time
from pathlib import Path

from tests.cli.test_invoices_cron import _cron_entry
from tests.support.gateway import GATEWAYCTL, GatewayProcess

CRON = Path(__file__).resolve().parents[2] / "packaging" / "gateway-backup.cron"


def test_the_shipped_backup_cron_line_runs_as_written_and_rotates(gw: GatewayProcess, tmp_path: Path) -> None:
    env, schedule, user, command = _cron_entry(CRON)
    assert schedule == ["10", "3", "*", "*", "*"] and user == "gateway"
    etc, logs, backups = tmp_path / "etc", tmp_path / "log", tmp_path / "backups"
    for folder in (etc, logs, backups):
        folder.mkdir()
    (etc / "cron.env").write_text(f"GATEWAY_URL={gw.url}\nGATEWAY_ADMIN_TOKEN={gw.admin_token}\n")
    old, recent = backups / "gateway-2000-01-01.db.gz", backups / "gateway-2000-01-02.db.gz"
    for path, age_days in ((old, 20), (recent, 3)):
        path.write_bytes(b"")
        when = time.time() - age_days * 86_400
        os.utime(path, (when, when))
    sandboxed = command
    for real, stand_in in (
        ("/usr/bin/python3 /opt/gateway/gatewayctl.pyz", GATEWAYCTL),
        ("/etc/gateway/", f"{etc}/"),
        ("/var/log/gateway/", f"{logs}/"),
        ("/var/backups/gateway", str(backups)),
    ):
        assert real in sandboxed, f"the cron line no longer mentions {real}"
        sandboxed = sandboxed.replace(real, stand_in)
    sandboxed = sandboxed.replace("\\%", "%")  # cron unescapes these before the shell sees them
    cron_env = {"SHELL": env["SHELL"], "PATH": env["PATH"], "HOME": str(tmp_path), "LOGNAME": user}
    done = subprocess.run([env["SHELL"], "-c", sandboxed], env=cron_env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, (logs / "backup.log").read_text()
    today = backups / f"gateway-{time.strftime('%Y-%m-%d')}.db.gz"
    assert gzip.decompress(today.read_bytes())[:16] == b"SQLite format 3\x00"
    assert not old.exists() and recent.exists()
    assert "checked: integrity ok; ledger ok" in (logs / "backup.log").read_text()
