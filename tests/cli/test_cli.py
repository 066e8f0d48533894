"""The real gatewayctl against a running server: every command, with --json, and its errors."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import uuid
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.gateway import GATEWAYCTL, GatewayProcess, run_cli


def test_init_writes_config_database_and_a_token_once(tmp_path: Path) -> None:
    first = subprocess.run(  # under the usual umask 022: init makes its files private anyway
        ["/bin/sh", "-c", f"umask 022 && exec {GATEWAYCTL} init --dir {tmp_path} --json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert (tmp_path / "config.toml").is_file()
    assert (tmp_path / "data" / "gateway.db").is_file()
    assert stat.S_IMODE((tmp_path / "config.toml").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "data" / "gateway.db").stat().st_mode) == 0o600
    assert '"admin_token": "gwa_' in first.stdout
    again = run_cli("init", "--dir", str(tmp_path), "--json")
    assert '"admin_token": null' in again.stdout  # kept, not replaced


def test_init_without_keyring_says_so_and_prints_token(tmp_path: Path) -> None:
    result = run_cli("init", "--dir", str(tmp_path), env={"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
    assert "admin token (shown once): gwa_" in result.stdout
    assert "no usable keyring backend" in result.stdout and "GATEWAY_ADMIN_TOKEN" in result.stdout


def test_projects_and_keys_lifecycle(gw: GatewayProcess) -> None:
    project = gw.cli_json("projects", "create", "acme", "--plan", "standard")
    assert project["name"] == "acme" and project["id"].startswith("prj_") and project["billing"] == "postpaid"
    assert "acme" in gw.cli("projects", "list").stdout
    created = gw.cli_json("keys", "create", "--project", "acme", "--name", "ci")
    assert created["key"].startswith("gw_live_") and len(created["key"]) >= 40
    assert created["prefix"] == created["key"][:12]
    listed = gw.cli_json("keys", "list", "--project", "acme")
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key_hash" not in listed[0] and created["key"] not in gw.cli("keys", "list").stdout
    shown = gw.cli_json("keys", "show", created["id"])
    assert shown["status"] == "active"
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=created["key"], max_retries=0)
    assert client.chat.completions.create(model="mock-chat", messages=[{"role": "user", "content": "hi"}])
    revoked = gw.cli_json("keys", "revoke", created["id"])
    assert revoked["status"] == "revoked"
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.chat.completions.create(model="mock-chat", messages=[{"role": "user", "content": "hi"}])
    assert info.value.code == "key_revoked"


def test_duplicate_project_is_a_one_line_error(gw: GatewayProcess) -> None:
    gw.cli_json("projects", "create", "dupe")
    result = gw.cli("projects", "create", "dupe", check=False)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "already exists" in result.stderr


def test_models_list(gw: GatewayProcess) -> None:
    models = gw.cli_json("models", "list")
    chat = next(m for m in models if m["id"] == "mock-chat")
    assert chat["targets"] == ["mock:mock-chat"] and chat["pricing"]["output"] == 2.0
    assert "mock-embed" in gw.cli("models", "list").stdout


def test_usage_totals_and_request_show(gw: GatewayProcess) -> None:
    key = gw.new_key("metered")
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)
    request_id = str(uuid.uuid4())
    for _ in range(3):
        client.chat.completions.create(model="mock-chat", messages=[{"role": "user", "content": "count me"}])
    client.chat.completions.create(
        model="mock-chat",
        messages=[{"role": "user", "content": "count me"}],
        extra_headers={"x-request-id": request_id},
    )
    shown = gw.cli_json("requests", "show", request_id)
    assert shown["client_request_id"] == request_id and shown["status"] == "ok"
    # mock usage: prompt = ceil(8/4)+1 = 3 tokens at 1.0/1M, completion = 4 words at 2.0/1M
    assert (shown["input_tokens"], shown["output_tokens"], shown["cost_micro"]) == (3, 4, 11)
    usage = gw.cli_json("usage", "--since", "1h", "--project", "metered")
    row = next(r for r in usage["data"] if r["model"] == "mock-chat")
    assert row["requests"] == 4 and row["cost_micro"] == 44 and row["cost"] == "0.000044"
    by_day = gw.cli_json("usage", "--since", "1h", "--by", "day", "--project", "metered")
    assert by_day["data"][0]["requests"] == 4
    assert "mock-chat" in gw.cli("usage", "--since", "1h").stdout


def test_missing_request_and_bad_since_fail_cleanly(gw: GatewayProcess) -> None:
    missing = gw.cli("requests", "show", "nope", check=False)
    assert missing.returncode == 1 and "request_not_found" in missing.stderr
    bad = gw.cli("usage", "--since", "yesterday-ish", check=False)
    assert bad.returncode == 2 and "--since" in bad.stderr


def test_admin_api_needs_the_admin_token(gw: GatewayProcess) -> None:
    wrong = run_cli("projects", "list", "--url", gw.url, "--token", "gwa_wrong", check=False)
    assert wrong.returncode == 1 and "invalid_admin_token" in wrong.stderr
    key = gw.new_key("not-admin")
    as_key = httpx.get(f"{gw.url}/admin/v1/projects", headers={"authorization": f"Bearer {key}"})
    assert as_key.status_code == 401
    for path in ("/admin/v1/projects/", "/admin/v1//projects", "/ADMIN/v1/projects"):
        assert httpx.get(f"{gw.url}{path}").status_code in (401, 404)


def test_no_token_anywhere_explains_alternatives(gw: GatewayProcess) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GATEWAY_ADMIN_TOKEN"}
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    result = subprocess.run(
        [GATEWAYCTL, "projects", "list", "--url", gw.url], capture_output=True, text=True, env=env, timeout=30
    )
    assert result.returncode == 1
    assert "no usable keyring backend" in result.stderr and "--token" in result.stderr
    assert "GATEWAY_ADMIN_TOKEN" in result.stderr


def test_invalid_config_fails_at_start_with_one_line_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[server]\nport = "eighty"\n')
    result = run_cli("serve", "--config", str(config), check=False)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "server.port" in result.stderr
    env_bad = run_cli("serve", "--config", str(config), check=False, env={"GATEWAY_STORAGE__SYNCHRONOUS": "SOMETIMES"})
    assert "server.port" in env_bad.stderr or "storage.synchronous" in env_bad.stderr
    config.write_text('[[models]]\nname = "m"\ntargets = ["ghost:m"]\n')
    ghost = run_cli("serve", "--config", str(config), check=False)
    assert ghost.returncode == 2 and "unknown provider 'ghost'" in ghost.stderr


def test_keys_create_prints_the_key_alone_on_stdout_and_advice_on_stderr(gw: GatewayProcess) -> None:
    gw.cli_json("projects", "create", "one-line")
    result = gw.cli("keys", "create", "--project", "one-line", "--name", "deploy")
    assert result.stdout.endswith("\n") and result.stdout.count("\n") == 1
    key = result.stdout.strip()
    assert key.startswith("gw_live_") and " " not in key
    assert "cannot be shown again" in result.stderr and key not in result.stderr
    [listed] = gw.cli_json("keys", "list", "--project", "one-line")
    rotated = gw.cli("keys", "rotate", listed["id"], "--grace", "1h")
    assert rotated.stdout.count("\n") == 1 and rotated.stdout.strip().startswith("gw_live_")
    assert rotated.stdout.strip() != key and "previous secret keeps working until" in rotated.stderr


def test_json_errors_carry_the_servers_error_object(gw: GatewayProcess) -> None:
    result = gw.cli("requests", "show", "no-such-request", "--json", check=False)
    assert result.returncode == 1
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "request_not_found" and error["status"] == 404 and error["type"] == "not_found_error"
    assert result.stderr.startswith("error: 404 request_not_found")


def test_wallet_credit_with_an_id_is_idempotent(gw: GatewayProcess) -> None:
    gw.cli_json("projects", "create", "credited")
    args = ("wallet", "credit", "--project", "credited", "--amount", "5", "--reason", "welcome", "--id", "welcome-1")
    first = gw.cli_json(*args)
    again = gw.cli(*args)
    assert again.returncode == 0 and "already recorded" in again.stdout
    assert gw.cli_json(*args)["id"] == first["id"]
    assert gw.cli_json("wallet", "balance", "--project", "credited")["balance_micro"] == 5_000_000
    other = gw.cli(*args[:5], "6", *args[6:], check=False)
    assert other.returncode == 1 and "409 duplicate_adjustment" in other.stderr
    raw = httpx.post(
        f"{gw.url}/admin/v1/wallet/credited/credit",
        json={"amount": "5", "reason": "welcome", "id": "welcome-1"},
        headers={"authorization": f"Bearer {gw.admin_token}"},
    )
    assert raw.status_code == 200 and raw.json()["replayed"] is True
    assert gw.cli_json("wallet", "balance", "--project", "credited")["balance_micro"] == 5_000_000
    assert [e["kind"] for e in gw.cli_json("wallet", "history", "--project", "credited")] == ["adjustment"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/budgets", {"project": "guarded-money", "monthly": "-3"}),
        ("POST", "/budgets", {"project": "guarded-money", "monthly": "1e15"}),
        ("POST", "/budgets", {"project": "guarded-money", "monthly": "NaN"}),
        ("POST", "/budgets", {"project": "guarded-money", "monthly": -3}),
        ("PATCH", "/projects/guarded-money", {"monthly_budget": "-1"}),
        ("POST", "/keys", {"project": "guarded-money", "monthly_budget": "-2"}),
        ("POST", "/keys", {"project": "guarded-money", "monthly_budget": "0"}),
        ("POST", "/wallet/guarded-money/credit", {"amount": "0", "reason": "x"}),
        ("POST", "/wallet/guarded-money/credit", {"amount": "-9999999999", "reason": "x"}),
        ("POST", "/wallet/guarded-money/credit", {"amount": "Infinity", "reason": "x"}),
        ("POST", "/wallet/guarded-money/topup", {"amount": "-20"}),
    ],
)
def test_the_admin_api_refuses_negative_or_absurd_money(
    gw: GatewayProcess, method: str, path: str, body: dict[str, object]
) -> None:
    if "guarded-money" not in {p["name"] for p in gw.cli_json("projects", "list")}:
        gw.cli_json("projects", "create", "guarded-money")
    response = httpx.request(
        method, f"{gw.url}/admin/v1{path}", json=body, headers={"authorization": f"Bearer {gw.admin_token}"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_amount"
    project = gw.cli_json("projects", "show", "guarded-money")
    assert project["monthly_budget_micro"] is None
    assert gw.cli_json("wallet", "balance", "--project", "guarded-money")["balance_micro"] == 0


def test_requests_show_lists_every_request_sharing_a_client_id(gw: GatewayProcess) -> None:
    key = gw.new_key("reused-ids")
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)
    shared = str(uuid.uuid4())
    for text in ("first", "second"):
        client.chat.completions.create(
            model="mock-chat", messages=[{"role": "user", "content": text}], extra_headers={"x-request-id": shared}
        )
    shown = gw.cli_json("requests", "show", shared)
    assert len(shown["match_ids"]) == 2 and shown["id"] == shown["match_ids"][0]
    text = gw.cli("requests", "show", shared)
    assert "2 requests match" in text.stderr
    assert all(f"request:{' ' * 11}{i}" in text.stdout or i in text.stdout for i in shown["match_ids"])
    assert text.stdout.count("client request id:") == 2 and "reused-ids" in text.stdout
    one = gw.cli_json("requests", "show", shown["match_ids"][1])
    assert one["match_ids"] == [shown["match_ids"][1]]


def test_human_output_names_not_ids_and_fits_80_columns(gw: GatewayProcess) -> None:
    gw.cli_json("projects", "create", "names-please")
    long_name = "a-rather-long-key-name-that-would-push-the-table-past-eighty-columns"
    created = gw.cli_json("keys", "create", "--project", "names-please", "--name", long_name, "--models", "mock-chat")
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=created["key"], max_retries=0)
    client.chat.completions.create(model="mock-chat", messages=[{"role": "user", "content": "hi"}])
    listed = gw.cli("keys", "list", "--project", "names-please").stdout
    assert "names-please" in listed and "prj_" not in listed and created["id"] not in listed
    assert created["prefix"] in listed and "just now" in listed
    assert all(len(line) <= 80 for line in listed.splitlines()), listed
    assert not any(ch in listed for ch in "│┃━─╭") and "\x1b[" not in listed  # plain in a pipe
    assert created["id"] in gw.cli("keys", "list", "--project", "names-please", "--ids").stdout
    by_key = gw.cli("usage", "--since", "1h", "--by", "key", "--project", "names-please").stdout
    assert "names-please" in by_key and created["id"] not in by_key and "$0.0000" in by_key
    assert all(len(line) <= 80 for line in by_key.splitlines()), by_key
    rows = gw.cli_json("usage", "--since", "1h", "--by", "key", "--project", "names-please")["data"]
    assert rows[0]["key"] == created["id"] and rows[0]["project_name"] == "names-please"
    shown = gw.cli("keys", "show", created["id"]).stdout
    last_used = shown.split("last used:")[1].splitlines()[0]
    assert "just now" in last_used or "ago" in last_used
    assert "models: mock-chat" in shown and "{" not in shown  # scopes as lines, not a dict


def test_money_is_shown_with_its_currency_aligned_on_the_decimal_point(gw: GatewayProcess) -> None:
    gw.cli_json("projects", "create", "aligned")
    gw.cli_json("budgets", "set", "--project", "aligned", "--monthly", "1234.5")
    key = gw.cli_json("keys", "create", "--project", "aligned", "--name", "small")
    gw.cli_json("budgets", "set", "--key", key["id"], "--monthly", "0.000123")
    text = gw.cli("budgets", "list").stdout
    lines = [line for line in text.splitlines() if " aligned " in f" {line} "]
    assert len(lines) == 2, text
    assert any("$1,234.50" in line for line in lines) and any("$0.000123" in line for line in lines), text
    points = {line.index(".", line.index("$")) for line in lines}  # the budget column's decimal point
    assert len(points) == 1, text
    assert "1234500000" not in text and "123 micro" not in text


def test_budgets_show_and_list(gw: GatewayProcess) -> None:
    gw.cli_json("projects", "create", "budget-view")
    assert gw.cli_json("budgets", "show", "--project", "budget-view")["data"][0]["monthly_budget_micro"] is None
    gw.cli_json("budgets", "set", "--project", "budget-view", "--monthly", "12.5")
    shown = gw.cli("budgets", "show", "--project", "budget-view").stdout
    assert "monthly budget:" in shown and "$12.50" in shown and "resets:" in shown
    listed = gw.cli_json("budgets", "list")
    row = next(r for r in listed["data"] if r["name"] == "budget-view")
    assert row["scope"] == "project" and row["monthly_budget_micro"] == 12_500_000 and row["spent_micro"] == 0
    gw.cli_json("budgets", "set", "--project", "budget-view", "--monthly", "0")
    assert "budget-view" not in {r["name"] for r in gw.cli_json("budgets", "list")["data"]}


def test_colour_only_on_a_terminal_and_never_with_no_color(gw: GatewayProcess) -> None:
    import pty

    def on_terminal(extra: dict[str, str]) -> str:
        leader, follower = pty.openpty()
        env = {**os.environ, **gw.env, "TERM": "xterm", **extra}
        env.pop("NO_COLOR", None) if "NO_COLOR" not in extra else None
        proc = subprocess.Popen([GATEWAYCTL, "projects", "list"], stdout=follower, stderr=follower, env=env)
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=30)
        os.close(leader)
        return b"".join(chunks).decode()

    assert "\x1b[1m" in on_terminal({})  # bold headings on a terminal
    assert "\x1b[" not in on_terminal({"NO_COLOR": "1"})


def test_values_complete_from_the_server(gw: GatewayProcess) -> None:
    gw.cli_json("projects", "create", "completable")
    env = {
        **gw.env,
        "_GATEWAYCTL_COMPLETE": "complete_bash",
        "COMP_WORDS": "gatewayctl keys list --project compl",
        "COMP_CWORD": "4",
    }
    assert run_cli(env=env, check=False).stdout.split() == ["completable"]
    models = {**env, "COMP_WORDS": "gatewayctl keys create --project x --models mock-e", "COMP_CWORD": "6"}
    assert run_cli(env=models, check=False).stdout.split() == ["mock-embed"]
