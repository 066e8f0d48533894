"""Upgrades: a database written by the oldest released schema (tests/fixtures/schema-0.1.0, built by that
release's code with real traffic) migrates to the latest schema at start-up and keeps everything: its
projects and balances, a ledger that still verifies with its key, keys that still authenticate, and new
requests served and billed on it."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from server.store.sqlite.migrations import MIGRATIONS
from tests.inproc.harness import BASE_CONFIG, running

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "schema-0.1.0"


def test_old_migrations_are_never_renamed_or_reordered() -> None:
    shipped = json.loads((FIXTURE / "manifest.json").read_text())["migrations"]
    assert [name for name, _ in MIGRATIONS][: len(shipped)] == shipped


async def test_a_database_from_the_oldest_release_migrates_and_keeps_serving(tmp_path: Path) -> None:
    manifest = json.loads((FIXTURE / "manifest.json").read_text())
    (tmp_path / "data").mkdir()
    shutil.copyfile(FIXTURE / "gateway.db", tmp_path / "data" / "gateway.db")
    shutil.copyfile(FIXTURE / "ledger.key", tmp_path / "ledger.key")
    (tmp_path / "config.toml").write_text(f'[server]\ndata_dir = "data"\n{BASE_CONFIG}')
    async with running(tmp_path, fresh=False) as gw:
        projects = {p["name"]: p for p in (await gw.admin.get("/admin/v1/projects")).json()["data"]}
        assert sorted(projects) == manifest["projects"]
        for name, micro in manifest["balances_micro"].items():
            balance = (await gw.admin.get(f"/admin/v1/wallet/{name}")).json()
            assert balance["balance_micro"] == micro, (name, balance)
        assert all(check["ok"] for check in await gw.gateway.store.verify_ledger())
        for key in manifest["keys"].values():
            assert (await gw.chat(key, model="mock-chat")).status_code == 200
        await gw.quiesce()
        assert all(check["ok"] for check in await gw.gateway.store.verify_ledger())
    conn = sqlite3.connect(tmp_path / "data" / "gateway.db")
    try:
        applied = [row[0] for row in conn.execute("SELECT name FROM _migrations ORDER BY name")]
        assert applied == [name for name, _ in MIGRATIONS]
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT COUNT(*) FROM requests").fetchone() == (manifest["requests"] + 2,)
    finally:
        conn.close()
