"""The real gatewayctl against a running server: every command, with --json, and its errors."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.gateway import GATEWAYCTL, MOCK_CONFIG, GatewayProcess, run_cli


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> GatewayProcess:
    process = GatewayProcess(tmp_path_factory.mktemp("cli"), MOCK_CONFIG).start()
    yield process  # type: ignore[misc]
    process.stop()


def test_init_writes_config_database_and_a_token_once(tmp_path: Path) -> None:
    first = run_cli("init", "--dir", str(tmp_path), "--json")
    assert (tmp_path / "config.toml").is_file()
    assert (tmp_path / "data" / "gateway.db").is_file()
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
