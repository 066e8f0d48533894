"""Operating a gateway: reload its config and take backups through the admin API; restore one locally."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from gatewayctl.errors import CliError
from gatewayctl.options import Json, Token, Url, admin
from gatewayctl.output import emit_json, note, say


def reload(json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """Re-read the server's config.toml without a restart.

    Applies models, targets, prices, plans, providers, routing and limits (as SIGHUP does); requests in
    flight finish on the config they started with. A file that does not validate is refused with the
    reason, the running config stays, and the command exits 1. Other keys (listener, storage, billing)
    are named as needing a restart.
    """
    answer = admin(url, token).post("/reload")
    if json_out:
        emit_json(answer)
        return
    say(f"reloaded {answer['config']}: generation {answer['generation']} in {answer['took_ms']} ms")
    for line in change_lines(answer["changed"]):
        say(f"  {line}")
    if answer["restart_needed"]:
        note(f"needs a restart to apply: {', '.join(answer['restart_needed'])}")


def change_lines(changed: dict[str, Any]) -> list[str]:
    lines = []
    for section in ("models", "providers", "plans"):
        found = changed[section]
        parts = [f"{verb} {', '.join(found[verb])}" for verb in ("added", "removed", "changed") if found[verb]]
        if parts:
            lines.append(f"{section}: {'; '.join(parts)}")
    lines += [f"{section}: changed" for section in ("routing", "limits") if changed[section]]
    return lines or ["no changes"]


def backup(
    out: Annotated[Path, typer.Option("--out", help="The file to write; gzip-compressed when it ends in .gz.")],
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Take a consistent, checked copy of the live database.

    The server copies its database while serving (one snapshot: every request acknowledged before the backup
    started is in it), checks the copy (integrity_check, the ledger verified with its key, the schema) and
    sends it; FILE is a SQLite database, gzip-compressed when it ends in .gz, written only once its sha256
    matches the server's. The ledger key is NOT in the backup: keep the key file named in the output with it.
    """
    import hashlib
    import os
    import time
    import zlib

    from gatewayctl.client import AdminClient
    from gatewayctl.credentials import admin_token, server_url

    base = server_url(url)
    client = AdminClient(base, admin_token(token, base), timeout=3600)  # a large copy takes a while to check
    packed = out.name.endswith(".gz")
    part = out.with_name(out.name + ".part")
    digest, unpack, written = hashlib.sha256(), zlib.decompressobj(31) if packed else None, 0
    started = time.monotonic()
    previous = os.umask(0o077)  # the database holds key hashes, the ledger, customers' billing details

    def write(piece: bytes) -> None:
        nonlocal written
        sink.write(piece)
        written += len(piece)
        digest.update(unpack.decompress(piece) if unpack is not None else piece)

    try:
        with part.open("wb") as sink:
            headers = client.download("/backup", write, {"compress": "gzip" if packed else "none"})
            sink.flush()
            os.fsync(sink.fileno())
        report = json.loads(headers.get("x-backup-report") or "{}")
        if digest.hexdigest() != report.get("sha256") or (unpack is not None and not unpack.eof):
            raise CliError("the backup arrived damaged (its sha256 differs from the server's); nothing was kept")
        part.rename(out)
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        os.umask(previous)
        part.unlink(missing_ok=True)
    result = {"file": str(out), "bytes_written": written, "seconds": round(time.monotonic() - started, 3), **report}
    if json_out:
        emit_json(result)
        return
    ledger, key = report["ledger"], report["ledger_key"]
    say(f"backup: {out} ({_mib(written)} written{', gzip' if packed else ''}; database {_mib(report['bytes'])})")
    say(
        f"checked: integrity {report['integrity']}; ledger ok ({ledger['projects']:,} projects,"
        f" {ledger['entries']:,} entries); schema {report['schema']}; {report['requests']:,} requests"
    )
    note(
        f"the ledger key is not in the backup: keep {key['file']} (fingerprint {key['fingerprint']}) with it;"
        " a restore needs it to verify the ledger."
    )


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


def restore(
    file: Annotated[Path, typer.Argument(help="A backup written by `gatewayctl backup` (plain or .gz).")],
    directory: Annotated[Path, typer.Option("--dir", help="The folder holding config.toml.")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Replace an existing database (kept aside).")] = False,
    json_out: Json = False,
) -> None:
    """Put a backup in place as the database of DIR/config.toml.

    Refuses while a server runs on that data folder (it would be overwriting a live database), and refuses
    an existing database unless --force (the old files are then moved aside, not deleted). The copy must pass
    integrity_check and verify its ledger with DIR's ledger key (put the key file kept with the backup
    there first); its schema is then migrated to this version's.
    """
    import time

    from gatewayctl.commands.local import PRIVATE, _lock, _settings
    from server.billing.ledger import LedgerChain, load_or_create_key
    from server.store.sqlite.backup import check, install, migrate_file, unpack

    os.umask(PRIVATE)
    if not file.is_file():
        raise CliError(f"no backup file {file}")
    config = directory / "config.toml"
    if not config.is_file():
        raise CliError(f"{config} not found: run `gatewayctl init --dir {directory}` first (or copy your config)")
    settings = _settings(config)
    key_path = settings.ledger_key_path
    if not key_path.is_file():
        raise CliError(f"the ledger key {key_path} is missing: put the key file kept with this backup there")
    chain = LedgerChain(load_or_create_key(key_path)[0])
    database = settings.database_path
    lock = _lock(settings.data_path)  # a server on this data folder refuses us here
    try:
        if database.exists() and not force:
            raise CliError(f"{database} exists; --force replaces it (the current files are moved aside)")
        copy = database.with_name(database.name + ".restoring")
        try:
            unpack(file, copy)
            report = check(copy, chain)
        except (OSError, EOFError, ValueError) as exc:
            copy.unlink(missing_ok=True)
            raise CliError(f"{file} is not a readable gateway backup: {exc}") from None
        except Exception as exc:  # not a SQLite database, or not one of ours
            copy.unlink(missing_ok=True)
            raise CliError(f"{file} is not a gateway database: {exc}") from None
        problems = _refusals(report)
        if problems:
            copy.unlink(missing_ok=True)
            raise CliError(f"{file} was not restored: {'; '.join(problems)}")
        moved = install(copy, database, time.strftime("%Y%m%dT%H%M%S"))
        migrated = migrate_file(database)
    finally:
        lock.release()
    result = {"database": str(database), "from": str(file), "moved_aside": [str(p) for p in moved], **report}
    result["migrated"] = migrated
    if json_out:
        emit_json(result)
        return
    say(f"restored {file} as {database} ({report['requests']:,} requests, {report['ledger']['entries']:,} entries)")
    for path in moved:
        note(f"kept the previous file as {path}")
    if migrated:
        note(f"schema migrated: {', '.join(migrated)}")


def _refusals(report: dict[str, Any]) -> list[str]:
    problems = [] if report["integrity"] == "ok" else [f"integrity_check: {report['integrity']}"]
    if not report["ledger"]["ok"]:
        problems.append(f"its ledger does not verify with this ledger key: {report['ledger']['problems'][0]}")
    if report["schema_unknown"]:
        problems.append(f"it is from a newer version (schema {', '.join(report['schema_unknown'])})")
    return problems
