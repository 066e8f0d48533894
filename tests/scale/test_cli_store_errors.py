"""A PostgreSQL store that cannot be reached is one line naming it (never its password), exit 1: at serve,
at init and at migrate-store."""

from __future__ import annotations

from pathlib import Path

from tests.support.gateway import free_port, run_cli

NOWHERE = f"postgresql://gateway:s3cret@127.0.0.1:{free_port()}/gateway"


def test_an_unreachable_store_is_one_line_without_its_password(tmp_path: Path) -> None:
    shared, local = tmp_path / "shared", tmp_path / "local"
    shared.mkdir()
    local.mkdir()
    config = shared / "config.toml"
    config.write_text(f'[server]\nport = {free_port()}\ndata_dir = "data"\n[store]\nurl = "{NOWHERE}"\n')
    (local / "config.toml").write_text('[server]\ndata_dir = "data"\n')
    run_cli("init", "--dir", str(local), "--json")  # a SQLite store to move
    for args in (
        ("serve", "--config", str(config)),
        ("init", "--dir", str(shared)),
        ("migrate-store", "--config", str(local / "config.toml"), "--to", NOWHERE),
    ):
        result = run_cli(*args, check=False)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1, (args, result.stderr)
        assert "s3cret" not in result.stderr and "cannot" in lines[0] and "127.0.0.1" in lines[0], (args, lines)
