"""Usage errors: exit 2, click's message and a hint on one line, never a traceback; --json errors too.

No server is needed: every case fails before the CLI talks to one (the URL points nowhere).
"""

from __future__ import annotations

import json

import pytest

from tests.support.gateway import run_cli

NOWHERE = {"GATEWAY_URL": "http://127.0.0.1:9", "GATEWAY_ADMIN_TOKEN": "gwa_unused"}


def _usage_error(*args: str) -> str:
    result = run_cli(*args, env=NOWHERE, check=False)
    assert result.returncode == 2, (args, result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    return result.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("projcts",), "No such command 'projcts'. Did you mean 'projects'?"),
        (("keys", "create"), "Missing option '--project'."),
        (("keys", "create", "--project", "acme", "--rpm", "lots"), "Invalid value for '--rpm'"),
        (("keys", "create", "--project", "acme", "--rpm", "0"), "Invalid value for '--rpm'"),
        (("--verison",), "No such option: --verison"),
        (("usage", "--by", "colour"), "Invalid value for '--by'"),
        (("usage", "--since", "yesterday-ish"), "--since"),
        (("budgets", "set", "--monthly", "5"), "give exactly one of --project or --key"),
        (("projects", "set-billing", "acme", "sometimes"), "'sometimes' is not one of 'postpaid', 'prepaid'"),
        (("invoices", "export", "--month", "2026-10"), "Missing option '--out'."),
    ],
)
def test_usage_errors_exit_2_with_one_line_and_a_hint(args: tuple[str, ...], says: str) -> None:
    stderr = _usage_error(*args)
    assert stderr.count("\n") == 1 and stderr.startswith("error: "), stderr
    assert says in stderr
    if "give exactly one" not in says and "--since" not in says:
        assert "--help' for help." in stderr  # where to look next


@pytest.mark.parametrize("args", [(), ("keys",), ("wallet",), ("budgets",)])
def test_a_bare_command_prints_its_help_and_exits_2(args: tuple[str, ...]) -> None:
    stderr = _usage_error(*args)
    assert stderr.startswith("Usage: gatewayctl") and "Commands:" in stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("budgets", "set", "--project", "acme", "--monthly", "-3"), "-3 is negative"),
        (("budgets", "set", "--project", "acme", "--monthly", "1e12"), "more than the largest amount"),
        (("budgets", "set", "--project", "acme", "--monthly", "NaN"), "is not an amount"),
        (("budgets", "set", "--project", "acme", "--monthly", "0.0000001"), "finer than the smallest unit"),
        (("keys", "create", "--project", "acme", "--monthly-budget", "-1"), "is negative"),
        (("keys", "create", "--project", "acme", "--monthly-budget", "0"), "must not be zero"),
        (("wallet", "credit", "--project", "acme", "--amount", "0", "--reason", "x"), "must not be zero"),
        (("wallet", "credit", "--project", "acme", "--amount", "-5e9", "--reason", "x"), "largest amount"),
        (("wallet", "topup", "--project", "acme", "--amount", "-20"), "is negative"),
    ],
)
def test_negative_or_absurd_money_is_refused_before_anything_is_sent(args: tuple[str, ...], says: str) -> None:
    stderr = _usage_error(*args)
    assert says in stderr and "Invalid value for" in stderr


def test_json_mode_puts_the_error_object_on_stdout() -> None:
    result = run_cli("keys", "create", "--json", env=NOWHERE, check=False)
    assert result.returncode == 2
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "usage_error" and error["exit_code"] == 2 and error["status"] is None
    assert "Missing option '--project'" in error["message"]


def test_unreachable_server_is_one_line_exit_1_and_json_too() -> None:
    result = run_cli("projects", "list", env=NOWHERE, check=False)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "cannot reach the gateway at http://127.0.0.1:9" in result.stderr and "Traceback" not in result.stderr
    as_json = run_cli("projects", "list", "--json", env=NOWHERE, check=False)
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["error"]["code"] == "unreachable"


def test_version_and_help_succeed() -> None:
    version = run_cli("--version", env=NOWHERE)
    assert version.stdout.startswith("gatewayctl ") and version.returncode == 0
    helped = run_cli("--help", env=NOWHERE)
    assert "Commands:" in helped.stdout and "budgets" in helped.stdout
    assert not any(ch in helped.stdout for ch in "│╭─┃━")  # plain help, no box drawing
    budgets = run_cli("budgets", "--help", env=NOWHERE)
    assert all(name in budgets.stdout for name in ("set", "show", "list"))


def test_values_complete_from_fixed_choices() -> None:
    env = {
        **NOWHERE,
        "_GATEWAYCTL_COMPLETE": "complete_bash",
        "COMP_WORDS": "gatewayctl usage --by ",
        "COMP_CWORD": "3",
    }
    result = run_cli(env=env, check=False)
    assert set(result.stdout.split()) >= {"model", "key", "project", "day"}, result.stdout + result.stderr
