"""The gatewayctl Typer app: one sub-app per noun; every failure is one line and a non-zero exit."""

from __future__ import annotations

import sys

import typer

from gatewayctl.commands import invoices, keys, local, money, projects, reports
from gatewayctl.errors import CliError

cli = typer.Typer(help="Operate the LLM gateway.", no_args_is_help=True, pretty_exceptions_enable=False)
cli.command("init")(local.init)
cli.command("serve")(local.serve)
cli.command("usage")(reports.usage)
cli.add_typer(projects.app, name="projects")
cli.add_typer(keys.app, name="keys")
cli.add_typer(reports.models_app, name="models")
cli.add_typer(reports.requests_app, name="requests")
cli.add_typer(money.budgets_app, name="budgets")
cli.add_typer(money.wallet_app, name="wallet")
cli.add_typer(money.ledger_app, name="ledger")
cli.add_typer(invoices.app, name="invoices")


def app() -> None:
    try:
        cli(standalone_mode=False)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            print(f"error: {exc.format_message()}", file=sys.stderr)
            sys.exit(exc.exit_code)
        raise
