"""House rules the architecture fixes, checked on every run."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORE = ["pipeline.py", "keys.py", "metering.py", "routing.py", "snapshot.py", "providers", "streaming", "money.py"]


def _modules(*roots: str) -> list[Path]:
    return [p for root in roots for p in (REPO / root).rglob("*.py")]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_module_over_600_lines() -> None:
    for path in _modules("server", "gatewayctl"):
        assert len(path.read_text().splitlines()) <= 600, path


def test_core_knows_nothing_of_http_frameworks_or_the_api() -> None:
    for entry in CORE:
        target = REPO / "server" / entry
        for path in target.rglob("*.py") if target.is_dir() else [target]:
            for name in _imports(path):
                assert not name.startswith(("litestar", "server.api")), f"{path} imports {name}"


def test_only_the_store_touches_sqlite() -> None:
    for path in _modules("server", "gatewayctl"):
        if "store" in path.relative_to(REPO).parts:
            continue
        for name in _imports(path):
            assert name.split(".")[0] not in ("sqlite3", "aiosqlite", "sqlite_utils"), f"{path} imports {name}"


def test_only_the_store_touches_postgresql() -> None:
    for path in _modules("server", "gatewayctl"):
        if "store" in path.relative_to(REPO).parts:
            continue
        for name in _imports(path):
            assert name.split(".")[0] not in ("psycopg", "asyncpg"), f"{path} imports {name}"


def test_readme_documents_every_cli_command_and_config_key() -> None:
    import typer.main

    from gatewayctl.main import cli

    readme = (REPO / "README.md").read_text()
    group = typer.main.get_command(cli)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for sub in subcommands:
                assert f"gatewayctl {name} {sub}" in readme, f"README lacks `gatewayctl {name} {sub}`"
        else:
            assert f"gatewayctl {name}" in readme, f"README lacks `gatewayctl {name}`"
    for section in ("[server]", "[storage]", "[[providers]]", "[[models]]"):
        assert section in readme


def test_billing_and_operations_reach_storage_only_through_the_store_protocol() -> None:
    for path in [*_modules("server/billing"), REPO / "server" / "operations.py", *_modules("server/api")]:
        for name in _imports(path):
            assert not name.startswith("server.store.sqlite"), f"{path} imports {name}"


def test_storage_never_imports_the_rules_it_applies() -> None:
    for path in _modules("server/store"):
        for name in _imports(path):
            assert not name.startswith(("server.billing", "server.metering", "server.pipeline")), f"{path}: {name}"


def test_money_is_computed_only_in_metering_and_money() -> None:
    """Micro-unit conversions live in money.py; charges, worst cases and estimates in metering.py."""
    for path in _modules("server"):
        if path.name in ("money.py", "metering.py", "clock.py"):  # clock: nanoseconds to milliseconds
            continue
        text = path.read_text()
        for forbidden in ("/ 1_000_000", "// 1_000_000 ", "* 1_000_000", "/1_000_000"):
            assert forbidden not in text, f"{path} converts money itself ({forbidden})"


def test_every_error_code_raised_is_a_row_of_the_error_table() -> None:
    import re

    from server.errors import TABLE

    known = {row.code for row in TABLE.values()}
    literal = re.compile(r"""\bcode=["']([a-z_]+)["']|_refuse\([^)]*,\s*["']([a-z_]+)["']\)""")
    for path in _modules("server"):
        for match in literal.finditer(path.read_text()):
            code = match.group(1) or match.group(2)
            assert code in known, f"{path} raises code {code!r}, which is not in server/errors.py's table"
    for path in _modules("server"):
        if path.name == "errors.py":
            continue
        for name in _imports(path):
            assert name != "server.errors" or "GatewayError(" not in path.read_text(), f"{path} builds its own error"
