"""Helpers for tests that run the same operations on SQLite and on PostgreSQL: a settings file for each
engine, and a gateway started in-process on it."""

from __future__ import annotations

import itertools
from pathlib import Path

from server.settings import Settings, load_settings
from tests.support.services import Postgres

_numbers = itertools.count(1)

BASE = """
[server]
data_dir = "data"
[[providers]]
name = "mock"
kind = "mock"
[[models]]
name = "m"
targets = ["mock:m"]
price = { input = 1, output = 2 }
"""


def engine_settings(engine: str, tmp_path: Path, postgres: Postgres | None, extra: str = "") -> Settings:
    """Settings for `engine` ("sqlite" or "postgres": a fresh database on the shared test server)."""
    text = BASE + extra
    if engine == "postgres":
        assert postgres is not None
        url = postgres.create_database(f"gw_{tmp_path.name[:40].lower()}_{next(_numbers)}")
        text += f'\n[store]\nurl = "{url}"\ninstance_ttl_s = 2\n'
    config = tmp_path / "config.toml"
    config.write_text(text)
    return load_settings(config)
