"""`gatewayctl install-service`: the systemd unit and the secrets file for one installation, idempotently.

Run as root after `gatewayctl init --dir D`. It creates the service user when missing (a system user
without a login shell), gives it D (config, ledger key, data), writes D/env for the provider secrets
when absent (0600, root's: only systemd reads it; never overwritten) and the unit with this
installation's paths; a .pyz first copies itself to --prefix, since the unit hides home directories.
Running it again changes nothing that is already right. Where systemd runs, it reloads systemd and
enables and (re)starts the service; elsewhere (or with --no-start) it prints the commands.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Annotated, Any

import typer

from gatewayctl.errors import CliError
from gatewayctl.options import Json
from gatewayctl.output import emit_json, note, say

UNIT_NAME = "gateway.service"
HIDDEN = ("/home", "/root", "/run/user")  # ProtectHome=yes hides these from the service


def _running_pyz() -> Path | None:
    first = Path(sys.argv[0])
    return first.resolve() if first.suffix == ".pyz" and zipfile.is_zipfile(first) else None


def _exec_start(prefix: Path, given: str | None) -> tuple[str, bool]:
    """The command the unit runs, and whether the .pyz was copied to `prefix` just now."""
    if given:
        return given, False
    pyz = _running_pyz()
    if pyz is None:
        command = Path(sys.argv[0]).absolute()
        if command.name != "gatewayctl" or not os.access(command, os.X_OK):
            raise CliError(f"cannot tell how this gatewayctl was started ({command}); pass --exec")
        return str(command), False
    target = prefix / "gatewayctl.pyz"
    copied = not target.exists() or target.read_bytes() != pyz.read_bytes()
    if copied:
        prefix.mkdir(parents=True, exist_ok=True, mode=0o755)
        shutil.copyfile(pyz, target)
        target.chmod(0o755)
    return f"{Path(sys.executable).resolve()} {target}", copied


def _user(name: str) -> tuple[int, int, bool]:
    """(uid, gid, created now): the service user, created as a system user when missing (root only)."""
    import pwd

    try:
        found = pwd.getpwnam(name)
        return found.pw_uid, found.pw_gid, False
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if os.geteuid() != 0 or useradd is None:
        raise CliError(f"user {name!r} does not exist; run as root to create it (useradd --system)")
    nologin = shutil.which("nologin") or "/usr/sbin/nologin"
    done = subprocess.run(
        [
            useradd,
            "--system",
            "--user-group",
            "--home-dir",
            "/var/lib/gateway",
            "--no-create-home",
            "--shell",
            nologin,
            name,
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise CliError(f"useradd {name} failed: {done.stderr.strip()}")
    found = pwd.getpwnam(name)
    return found.pw_uid, found.pw_gid, True


def _give(paths: list[Path], data: Path, uid: int, gid: int) -> None:
    """The service user owns its config, ledger key and data (as root; otherwise they are left as they are)."""
    if os.geteuid() != 0:
        return
    for path in [*paths, *data.rglob("*"), data]:
        if path.exists():
            os.chown(path, uid, gid, follow_symlinks=False)


def _env_file(path: Path, settings: Any) -> bool:
    """Create the secrets file (0600) naming the variables the config expects; never overwrite one."""
    if path.exists():
        return False
    names = [p.api_key_env for p in settings.providers if p.api_key_env]
    names += [settings.stripe.api_key_env, settings.stripe.webhook_secret_env]
    lines = ["# Secrets for the gateway service: NAME=value lines, read by systemd only (mode 0600)."]
    lines += [f"# {name}=" for name in dict.fromkeys(names)]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")
    return True


def _systemctl(changed: bool) -> list[str]:
    commands = [["systemctl", "daemon-reload"], ["systemctl", "enable", UNIT_NAME]]
    commands.append(["systemctl", "restart" if changed else "start", UNIT_NAME])
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise CliError(f"{' '.join(command)} failed: {done.stderr.strip()} (see journalctl -u gateway)")
    return [" ".join(c) for c in commands]


def install_service(
    user: Annotated[str, typer.Option("--user", help="The user the service runs as (created if missing).")] = "gateway",
    directory: Annotated[Path, typer.Option("--dir", help="The folder holding config.toml.")] = Path("/etc/gateway"),
    unit_dir: Annotated[Path, typer.Option("--unit-dir", help="Where the unit goes.")] = Path("/etc/systemd/system"),
    prefix: Annotated[Path, typer.Option("--prefix", help="Where a .pyz is copied.")] = Path("/opt/gateway"),
    exec_start: Annotated[str | None, typer.Option("--exec", help="The command that runs gatewayctl.")] = None,
    start: Annotated[bool, typer.Option("--start/--no-start", help="Enable and (re)start it under systemd.")] = True,
    json_out: Json = False,
) -> None:
    """Install the hardened systemd service for DIR/config.toml.

    Creates the service user if missing and gives it DIR, writes DIR/env for secrets (if absent) and the unit
    with this installation's paths; idempotent. Where systemd runs, reloads it and enables and starts the
    service (--no-start: print the commands instead).
    """
    from gatewayctl.commands.local import _settings
    from gatewayctl.service_unit import UnitSpec, render

    directory = directory.absolute()
    config = directory / "config.toml"
    if not config.is_file():
        raise CliError(f"{config} not found: run `gatewayctl init --dir {directory}` first")
    settings = _settings(config)
    command, copied = _exec_start(prefix.absolute(), exec_start)
    if command.split()[-1].startswith(HIDDEN):
        raise CliError(f"the service could not run {command.split()[-1]}: the unit hides home directories; pass --exec")
    uid, gid, created = _user(user)
    env_path = directory / "env"
    env_created = _env_file(env_path, settings)
    _give([directory, config, settings.ledger_key_path], settings.data_path, uid, gid)
    unit = render(
        UnitSpec(command, str(config), str(settings.data_path), str(env_path), user, settings.server.shutdown_grace_s)
    )
    unit_path = unit_dir / UNIT_NAME
    changed = not unit_path.exists() or unit_path.read_text() != unit
    if changed:
        unit_dir.mkdir(parents=True, exist_ok=True)
        unit_path.write_text(unit)
        unit_path.chmod(0o644)
    managed = start and unit_dir == Path("/etc/systemd/system") and Path("/run/systemd/system").is_dir()
    ran = _systemctl(changed or copied) if managed else []
    result = {
        "unit": str(unit_path),
        "unit_changed": changed,
        "exec": command,
        "pyz_copied": copied,
        "user": user,
        "user_created": created,
        "env_file": str(env_path),
        "env_created": env_created,
        "systemctl": ran,
    }
    if json_out:
        emit_json(result)
        return
    say(f"unit: {unit_path} ({'written' if changed else 'unchanged'}); runs {command} as {user}")
    say(f"secrets: {env_path} ({'created: add the provider keys there' if env_created else 'kept'})")
    for line in ran:
        say(f"ran: {line}")
    if not ran:
        note(f"next: systemctl daemon-reload && systemctl enable --now {UNIT_NAME}")
