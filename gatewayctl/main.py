"""The gatewayctl Typer app: one sub-app per noun; every failure is one line and a non-zero exit.

Usage errors (a bare command, a mistyped command or option, a missing option, a bad value) exit 2
with click's message and a hint where to look, never a traceback; a refused or failed operation
exits 1. With --json anywhere on the command line the error is also `{"error": {...}}` on stdout.
Command modules import the server's modules (pydantic, fpdf, uvicorn, …) only inside the commands
that need them, and the root builds a sub-command only when it runs (lazy.py), so `--help`,
completion and admin commands start fast.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer

from gatewayctl import lazy
from gatewayctl.commands import (
    budgets,
    doctor,
    invoices,
    keys,
    local,
    migrate_store,
    ops,
    projects,
    reports,
    request_log,
    service,
    tail,
    wallet,
    webhooks,
)
from gatewayctl.errors import USAGE, CliError

cli = typer.Typer(
    help="Operate the LLM gateway.", no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False
)
cli.command("init")(local.init)
cli.command("serve")(local.serve)
cli.command("replay")(request_log.replay)
cli.command("reload")(ops.reload)
cli.command("backup")(ops.backup)
cli.command("restore")(ops.restore)
cli.command("migrate-store")(migrate_store.migrate_store)
cli.command("doctor")(doctor.doctor)
cli.command("install-service")(service.install_service)
cli.add_typer(projects.app, name="projects")
cli.add_typer(keys.app, name="keys")
cli.add_typer(reports.models_app, name="models")
reports.usage_app.command("tail")(tail.usage_tail)
cli.add_typer(reports.usage_app, name="usage")
cli.add_typer(request_log.requests_app, name="requests")
cli.add_typer(budgets.app, name="budgets")
cli.add_typer(wallet.wallet_app, name="wallet")
cli.add_typer(wallet.ledger_app, name="ledger")
cli.add_typer(invoices.app, name="invoices")
cli.add_typer(webhooks.app, name="webhooks")


def _version() -> str:
    """The package version and the git revision it was built from (stamped into a .pyz, else asked of git)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version("llm-gateway")
    except PackageNotFoundError:
        number = "unknown"
    return f"{number} (revision {_revision()})"


def _revision() -> str:
    from pathlib import Path

    here = Path(__file__).resolve().parent
    stamped = here / "REVISION"  # written by packaging/build_pyz.py
    if stamped.is_file():
        return stamped.read_text().strip()
    if not (here.parent / ".git").exists():
        return "unknown"
    import subprocess

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(here.parent), *args], capture_output=True, text=True, timeout=5)
        return done.stdout.strip() if done.returncode == 0 else ""

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head + ("-dirty" if dirty else "")) if head else "unknown"


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"gatewayctl {_version()}\n")
        raise typer.Exit(0)


@cli.callback()
def root(
    _version_flag: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_show_version, help="Print the version and exit."),
    ] = False,
) -> None:
    """Operate the LLM gateway."""


def _click_exceptions() -> Any:
    try:
        from typer._click import exceptions  # typer 0.29 vendors click
    except ImportError:  # pragma: no cover - older typer on plain click
        from click import exceptions  # type: ignore[no-redef]
    return exceptions


def _json_mode(argv: list[str]) -> bool:
    args = argv[: argv.index("--")] if "--" in argv else argv
    return "--json" in args


def _fail(error: CliError, json_mode: bool) -> int:
    if json_mode:
        import json

        sys.stdout.write(json.dumps(error.as_json(), indent=2, sort_keys=True) + "\n")
    sys.stderr.write(f"error: {error.message}\n")
    return error.exit_code


def _usage(exc: Any, json_mode: bool) -> int:
    """Click's message on one line, then where the help is; a bare group prints its help."""
    exceptions = _click_exceptions()
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, exceptions.NoArgsIsHelpError):
        if not json_mode:
            sys.stderr.write(exc.format_message() + "\n")
            return USAGE
        message = f"'{ctx.command_path}' needs a command" if ctx else "a command is needed"
    else:
        message = exc.format_message().strip().replace("\n", " ")
    hint = f" Try '{ctx.command_path} --help' for help." if ctx is not None else ""
    ended = message if message.endswith((".", "?", "!", ")")) else message + "."
    return _fail(CliError(ended + hint, USAGE), json_mode)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (every error handled here, none escapes as a traceback)."""
    args = list(sys.argv[1:] if argv is None else argv)
    json_mode = _json_mode(args)
    exceptions = _click_exceptions()
    try:
        group = lazy.build(cli, root)
        result = group.main(args=args, prog_name="gatewayctl", standalone_mode=False)
    except CliError as exc:
        return _fail(exc, json_mode)
    except exceptions.UsageError as exc:
        return _usage(exc, json_mode)
    except exceptions.ClickException as exc:
        return _fail(CliError(exc.format_message(), exc.exit_code), json_mode)
    except (typer.Abort, KeyboardInterrupt):  # typer 0.28 folds click's Abort into its own
        sys.stderr.write("interrupted\n")
        return 130
    except typer.Exit as exc:
        return int(exc.exit_code)
    return result if isinstance(result, int) else 0


def app() -> None:
    code = run()
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # `gatewayctl … | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = code or 1
    sys.exit(code)
