"""Invoices through the CLI: drafts marked DRAFT without numbers, and the shipped cron line run
verbatim in a sandbox (a temp dir standing in for /etc, /var/log, /srv and /opt), exporting the last
ended month against the real server."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from server.billing.ledger import open_chain
from server.store.protocol import Closing, HoldRecord, Intent
from server.store.sqlite import records
from server.types import Call, Caller, Charge, Outcome, Usage
from tests.support.gateway import GATEWAYCTL, GatewayProcess
from tests.support.pdf import page_texts

CRON = Path(__file__).resolve().parents[2] / "packaging" / "gateway-invoices.cron"


def _cron_entry(path: Path = CRON) -> tuple[dict[str, str], list[str], str, str]:
    """(environment lines, the five schedule fields, the user, the command) of the one job."""
    env: dict[str, str] = {}
    jobs = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if re.match(r"^[A-Z_]+=", line):
            name, _, value = line.partition("=")
            env[name] = value
            continue
        jobs.append(line.split(None, 6))
    [fields] = jobs
    return env, fields[:5], fields[5], fields[6]


def _last_month_usage(gw: GatewayProcess, project: str) -> str:
    """Usage dated in the last month (UTC billing), written the way the server writes it; returns the month."""
    first_of_this_month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    when = first_of_this_month - timedelta(days=10)
    at_ms = int(when.timestamp() * 1000)
    [project_row] = [p for p in gw.cli_json("projects", "list") if p["name"] == project]
    key = gw.cli_json("keys", "create", "--project", project)
    caller = Caller(project_row["id"], key["id"], "127.0.0.1")
    chain, _ = open_chain(gw.dir / "ledger.key")  # the installation's ledger key, made by init
    card = {"input": 1_000_000, "output": 2_000_000, "cached_input": 1_000_000}
    conn = sqlite3.connect(gw.database, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for i in range(3):
            call = Call(request_id=f"req-cron-{i}", endpoint="chat", model="mock-chat", body={}, started_ms=at_ms + i)
            outcome = Outcome(
                status="ok",
                http_status=200,
                usage=Usage(input_tokens=100, output_tokens=50),
                charge=Charge(micro=2_500 + i, card=card),
                ended_ms=at_ms + i,
            )
            hold = HoldRecord(call.request_id, caller.project_id, caller.key_id, 0, False, card)
            records.insert_intent(Intent(caller, call, hold))(conn)
            records.close(Closing(caller, call, outcome, call.request_id, "settled"), chain)(conn)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return when.strftime("%Y-%m")


def test_a_running_month_exports_drafts_marked_draft_without_numbers(gw: GatewayProcess, tmp_path: Path) -> None:
    gw.cli_json("projects", "create", "drafted")
    gw.cli_json("wallet", "credit", "--project", "drafted", "--amount", "1", "--reason", "so the month has entries")
    month = datetime.now(UTC).strftime("%Y-%m")
    result = gw.cli_json("invoices", "export", "--month", month, "--out", str(tmp_path), "--project", "drafted")
    assert result["closed"] is False and result["month"] == month
    [invoice] = result["invoices"]
    assert invoice["number"] is None and invoice["status"] == "draft"
    folder = tmp_path / month
    assert sorted(p.name for p in folder.iterdir()) == ["DRAFT-drafted.csv", "DRAFT-drafted.json", "DRAFT-drafted.pdf"]
    document = json.loads((folder / "DRAFT-drafted.json").read_text())
    assert document["status"] == "draft" and document["number"] is None and document["issued_on"] is None
    assert document["as_of"] <= datetime.now(UTC).strftime("%Y-%m-%d")  # never a future date
    rows = list(csv.DictReader(io.StringIO((folder / "DRAFT-drafted.csv").read_text())))
    assert {row["invoice"] for row in rows} == {"DRAFT"}
    texts = page_texts((folder / "DRAFT-drafted.pdf").read_bytes())
    assert all("DRAFT" in text for text in texts) and "INV-" not in "".join(texts)
    human = gw.cli("invoices", "export", "--month", month, "--out", str(tmp_path), "--project", "drafted")
    assert "DRAFT" in human.stdout and "has not ended: these are drafts" in human.stderr


def test_the_shipped_cron_line_runs_as_written(gw: GatewayProcess, tmp_path: Path) -> None:
    env, schedule, user, command = _cron_entry()
    assert schedule == ["15", "13", "1-7", "*", "*"] and user == "gateway"
    assert "%" not in command.replace("\\%", "")  # cron would cut the command at an unescaped %
    gw.cli_json("projects", "create", "cron-billed")
    month = _last_month_usage(gw, "cron-billed")
    etc, log_dir, srv = tmp_path / "etc" / "gateway", tmp_path / "var" / "log" / "gateway", tmp_path / "srv"
    for folder in (etc, log_dir, srv / "invoices"):
        folder.mkdir(parents=True)
    # plain NAME=value lines, as an operator writes them (no `export`)
    (etc / "cron.env").write_text(f"GATEWAY_URL={gw.url}\nGATEWAY_ADMIN_TOKEN={gw.admin_token}\n")
    sandboxed = command
    for real, stand_in in (
        ("/usr/bin/python3 /opt/gateway/gatewayctl.pyz", GATEWAYCTL),
        ("/etc/gateway/", f"{etc}/"),
        ("/var/log/gateway/", f"{log_dir}/"),
        ("/srv/invoices", str(srv / "invoices")),
    ):
        assert real in sandboxed, f"the cron line no longer mentions {real}"
        sandboxed = sandboxed.replace(real, stand_in)
    cron_env = {"SHELL": env["SHELL"], "PATH": env["PATH"], "HOME": str(tmp_path), "LOGNAME": user}

    def run_job() -> dict[str, object]:
        done = subprocess.run([env["SHELL"], "-c", sandboxed], env=cron_env, cwd=tmp_path, timeout=60)
        log = (log_dir / "invoices.log").read_text()
        assert done.returncode == 0, log
        documents, decoder, at = [], json.JSONDecoder(), 0
        while at < len(log.rstrip()):  # the log appends one JSON document per run
            document, at = decoder.raw_decode(log, at)
            documents.append(document)
            at += len(log[at:]) - len(log[at:].lstrip())
        return documents[-1]

    first = run_job()
    assert first["month"] == month and first["closed"] is True
    [invoice] = [i for i in first["invoices"] if i["project"] == "cron-billed"]  # type: ignore[union-attr]
    assert re.fullmatch(r"INV-\d{6}", invoice["number"]) and invoice["total_micro"] == 7_503
    files = {suffix: Path(path).read_bytes() for suffix, path in invoice["files"].items()}
    assert Path(invoice["files"]["pdf"]).parent == srv / "invoices" / month
    second = run_job()  # the next day's run: same number, identical files
    [again] = [i for i in second["invoices"] if i["project"] == "cron-billed"]  # type: ignore[union-attr]
    assert again["number"] == invoice["number"]
    assert {suffix: Path(path).read_bytes() for suffix, path in again["files"].items()} == files
    checkpoints = srv / "invoices" / month / "ledger-checkpoints.json"  # signed proof kept beside the invoices
    assert json.loads(checkpoints.read_text())["checkpoints"]
    assert gw.cli("ledger", "verify", "--checkpoint", str(checkpoints)).returncode == 0


def test_a_ledger_checkpoint_verifies_and_a_forged_one_does_not(gw: GatewayProcess, tmp_path: Path) -> None:
    gw.cli_json("projects", "create", "checkpointed")
    gw.cli_json("wallet", "credit", "--project", "checkpointed", "--amount", "5", "--reason", "seed")
    path = tmp_path / "checkpoints.json"
    assert gw.cli_json("ledger", "checkpoint", "--out", str(path))["checkpoints"] >= 1
    assert gw.cli("ledger", "verify", "--checkpoint", str(path)).returncode == 0
    document = json.loads(path.read_text())
    for checkpoint in document["checkpoints"]:
        checkpoint["balance_micro"] += 1  # someone edits the statement to match a rewritten ledger
    path.write_text(json.dumps(document))
    forged = gw.cli("ledger", "verify", "--checkpoint", str(path), check=False)
    assert forged.returncode == 1 and "signature" in forged.stdout
