"""gatewayctl migrate-store: move the config's SQLite store and its stored files' bytes into an empty
PostgreSQL database (a local file operation, like init: it holds the data dir's lock, so no server writes
while the rows are copied), then verify the copy: row counts per table, balances, every ledger chain
checked with the ledger key, and every file read back with its size and hash."""

from __future__ import annotations

from typing import Annotated

import typer

from gatewayctl.commands.local import _lock, _settings
from gatewayctl.errors import USAGE, CliError
from gatewayctl.options import Config, Json
from gatewayctl.output import emit_json, say


def migrate_store(
    to: Annotated[str, typer.Option("--to", help="The PostgreSQL database to fill: postgresql://user@host/db.")],
    config: Config = None,
    json_out: Json = False,
) -> None:
    """Copy the SQLite store into an empty PostgreSQL database and verify it.

    Copies every table, the request bodies and the stored files' bytes in one transaction (insertion order
    kept), then checks row counts, balances, the ledger's chains and every file's size and hash on the
    target. Then set [store] url to the same URL.
    """
    if not to.startswith(("postgresql://", "postgres://")):
        raise CliError("--to must be a postgresql:// URL", USAGE)
    from server.billing.ledger import LedgerChain, load_or_create_key
    from server.store.postgres.copy import MigrationRefused, migrate_store
    from server.store.sqlite.bodies import FILE_NAME

    settings = _settings(config)
    if not settings.ledger_key_path.is_file():
        raise CliError(f"no ledger key at {settings.ledger_key_path}: the chains cannot be verified without it")
    key, _ = load_or_create_key(settings.ledger_key_path)
    db = settings.database_path
    lock = _lock(settings.data_path)
    try:
        report = migrate_store(db, db.with_name(FILE_NAME), to, LedgerChain(key), settings.files_path)
    except MigrationRefused as exc:
        raise CliError(str(exc), code="migration_refused") from None
    finally:
        lock.release()
    if json_out:
        emit_json(report)
        return
    say(f"copied {report['rows']} rows in {report['seconds']} s; verified:")
    for table, counts in report["tables"].items():
        say(f"  {table}: {counts['target']} rows")
    say(f"  files: {report['files']['target']} ({report['files']['bytes']} bytes), sizes and hashes verified")
    say(f"  ledger: {report['ledger_entries']} entries in {report['projects']} projects, every chain verifies")
    say("next: set [store] url to that URL in config.toml, then start gatewayctl serve")
