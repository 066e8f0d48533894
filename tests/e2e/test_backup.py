"""Backups of a live gateway, and restores: `gatewayctl backup` during load writes a consistent copy that
passes integrity_check and verifies its ledger, and holds every request acknowledged before it began;
`gatewayctl restore` refuses a live database and a ledger key that does not match, and a restored copy
serves again."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from server.billing.ledger import LedgerChain, load_or_create_key
from server.store.sqlite.backup import check
from tests.support.gateway import MOCK_CONFIG, GatewayProcess, run_cli


class Load:
    """Chat requests in a loop on one connection until stopped (bounded); remembers each acknowledged id."""

    def __init__(self, gw: GatewayProcess, key: str) -> None:
        self.acknowledged: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(gw.url, key))

    def _run(self, url: str, key: str) -> None:
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=20) as client:
            while not self._stop.is_set() and time.monotonic() < deadline and len(self.acknowledged) < 5000:
                body = {"model": "mock-chat", "messages": [{"role": "user", "content": "keep me"}]}
                response = client.post("/v1/chat/completions", json=body)
                if response.status_code == 200:
                    with self._lock:
                        self.acknowledged.append(response.headers["x-request-id"])

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(30)

    def so_far(self) -> set[str]:
        with self._lock:
            return set(self.acknowledged)

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 20
        while len(self.acknowledged) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.acknowledged) >= count, "the load never got going"


def _request_ids(database: Path) -> set[str]:
    conn = sqlite3.connect(database)
    try:
        rows = conn.execute("SELECT r.id FROM requests r JOIN usage u ON u.request_id = r.id WHERE r.status = 'ok'")
        return {row[0] for row in rows}
    finally:
        conn.close()


def test_backup_during_load_is_consistent_verified_and_restores(tmp_path: Path) -> None:
    (tmp_path / "live").mkdir()
    (tmp_path / "other").mkdir()
    gw = GatewayProcess(tmp_path / "live", MOCK_CONFIG).start()
    try:
        key = gw.new_key("backed-up")
        gw.cli("wallet", "credit", "--project", "backed-up", "--amount", "25", "--reason", "opening balance")
        packed, plain = tmp_path / "nightly.db.gz", tmp_path / "copy.db"
        with Load(gw, key) as load:
            load.wait_for(50)
            before = load.so_far()
            answer = json.loads(gw.cli("backup", "--out", str(packed), "--json").stdout)
            load.wait_for(len(before) + 20)  # the load went on while the copy was taken
            shown = gw.cli("backup", "--out", str(plain))
        assert answer["integrity"] == "ok" and answer["ledger"]["ok"] and answer["ledger"]["entries"] > len(before)
        assert answer["file"] == str(packed) and answer["compress"] == "gzip"
        assert f"backup: {plain}" in shown.stdout and "checked: integrity ok; ledger ok" in shown.stdout
        assert f"keep {gw.dir / 'ledger.key'}" in shown.stderr.replace("\n", " ")
        unpacked = tmp_path / "unpacked.db"
        unpacked.write_bytes(gzip.decompress(packed.read_bytes()))
        assert hashlib.sha256(unpacked.read_bytes()).hexdigest() == answer["sha256"]
        assert plain.read_bytes()[:16] == b"SQLite format 3\x00" and oct(plain.stat().st_mode & 0o777) == "0o600"
        assert before <= _request_ids(unpacked)  # everything acknowledged before the backup began
        chain = LedgerChain(load_or_create_key(gw.dir / "ledger.key")[0])
        report = check(unpacked, chain)
        assert report["integrity"] == "ok" and report["ledger"]["ok"] and report["schema_current"]
        assert not any(p.name.endswith(".backup-part") for p in gw.database.parent.iterdir())

        refused = gw.cli("restore", str(packed), "--dir", str(gw.dir), "--force", check=False)
        assert refused.returncode == 1 and "another gateway" in refused.stderr  # never over a live database
    finally:
        gw.stop()

    other = tmp_path / "other"
    spare = GatewayProcess(other, MOCK_CONFIG)  # init: its own database and its own ledger key
    wrong_key = run_cli("restore", str(packed), "--dir", str(other), "--force", check=False)
    assert wrong_key.returncode == 1 and "does not verify with this ledger key" in wrong_key.stderr
    exists = run_cli("restore", str(packed), "--dir", str(other), check=False)
    assert exists.returncode == 1 and "--force replaces it" in exists.stderr
    shutil.copyfile(gw.dir / "ledger.key", other / "ledger.key")  # the key kept with the backup
    restored = json.loads(run_cli("restore", str(packed), "--dir", str(other), "--force", "--json").stdout)
    assert restored["ledger"]["ok"] and len(restored["moved_aside"]) >= 1
    spare.admin_token = gw.admin_token  # the restored database holds the live gateway's admin tokens
    spare.start()
    try:
        assert spare.cli("ledger", "verify").returncode == 0
        some = sorted(before)[0]
        assert spare.cli_json("requests", "show", some)["status"] == "ok"
        assert spare.cli_json("wallet", "balance", "--project", "backed-up")["balance_micro"] != 0
    finally:
        spare.stop()
