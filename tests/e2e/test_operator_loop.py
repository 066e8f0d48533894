"""The operator's loop against a real gateway process, driven with the openai SDK and the real CLI:
`requests list|show` with scrubbed bodies, `replay` with a changed model (a stream, a tool call) and
`usage tail --json` following requests live across a server restart; Idempotency-Key retries from the
SDK under concurrency and across a restart; `GET /v1/usage` against the ledger."""

from __future__ import annotations

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai

from tests.support.front_doors import FrontDoors, expected_text, model_of
from tests.support.gateway import GATEWAYCTL, run_cli

TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]


def _client(fd: FrontDoors, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{fd.gw.url}/v1", api_key=key or fd.key, max_retries=0)


def _stored_bytes(database: Path) -> bytes:
    """Every byte the gateway stored: its database and the bodies' one, with their write-ahead logs."""
    files = [database, database.with_name("bodies.db")]
    return b"".join(path.read_bytes() for f in files for path in (f, Path(f"{f}-wal")) if path.exists())


def test_requests_list_and_show_with_scrubbed_bodies(fd: FrontDoors) -> None:
    key = fd.gw.new_key("support")
    client = _client(fd, key)
    secret_text = f"my key is {key}, my openai key sk-proj-0123456789abcdefghijklmn"
    plain = client.chat.completions.with_raw_response.create(
        model=model_of("mock"), messages=[{"role": "user", "content": secret_text}]
    )
    stream = client.chat.completions.create(
        model=model_of("openai"), messages=[{"role": "user", "content": "stream me"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected_text(
        "openai", "stream me"
    )
    listed = fd.gw.cli_json("requests", "list", "--project", "support")
    assert [row["model"] for row in listed] == [model_of("openai"), model_of("mock")]
    assert (
        fd.gw.cli_json("requests", "list", "--project", "support", "--model", model_of("mock"))[0]["id"]
        == (plain.headers["x-request-id"])
    )
    table = run_cli("requests", "list", "--project", "support", env={**fd.gw.env, "COLUMNS": "160"}).stdout
    assert "REQUEST" in table and model_of("openai") in table and listed[0]["id"][:8] in table
    assert listed[0]["id"] not in table
    wide = run_cli("requests", "list", "--ids", env={**fd.gw.env, "COLUMNS": "160"}).stdout
    assert listed[0]["id"] in wide
    assert fd.gw.cli_json("requests", "show", listed[0]["id"][:8])["id"] == listed[0]["id"]  # the short id will do

    shown = fd.gw.cli("requests", "show", plain.headers["x-request-id"]).stdout
    assert "request body:" in shown and "[redacted]" in shown and key not in shown
    assert expected_text("mock", "my key is") in shown
    streamed = fd.gw.cli_json("requests", "show", listed[0]["id"])
    assert streamed["bodies"]["response"]["choices"][0]["message"]["content"] == expected_text("openai", "stream me")
    assert "request body" not in fd.gw.cli("requests", "show", listed[0]["id"], "--no-bodies").stdout
    stored = _stored_bytes(fd.gw.database)
    assert key.encode() not in stored and b"sk-proj-0123456789abcdef" not in stored


def test_replay_of_a_stream_and_of_a_tool_call_with_another_model(fd: FrontDoors) -> None:
    key = fd.gw.new_key("replays")
    client = _client(fd, key)
    with client.chat.completions.with_streaming_response.create(
        model=model_of("mock"), messages=[{"role": "user", "content": "say it again"}], stream=True
    ) as response:
        original = response.headers["x-request-id"]
        response.read()
    out = fd.gw.cli("replay", original, "--model", model_of("openai")).stdout
    assert f"-{expected_text('mock', 'say it again')}" in out
    assert f"+{expected_text('openai', 'say it again')}" in out
    assert "ORIGINAL" in out and "finish reason" in out

    tool = client.chat.completions.with_raw_response.create(
        model=model_of("mock"), messages=[{"role": "user", "content": "look it up"}], tools=TOOLS
    )
    compared = fd.gw.cli_json("replay", tool.headers["x-request-id"], "--model", model_of("openai"))
    before, after = compared["original"], compared["replay"]
    assert before["answer"]["tool_calls"] == [{"name": "lookup", "arguments": '{"input": "mock"}'}]
    assert after["answer"]["tool_calls"][0]["name"] == "lookup"
    assert json.loads(after["answer"]["tool_calls"][0]["arguments"]) == {"x": 1}
    shown = fd.gw.cli_json("requests", "show", after["id"])
    assert shown["replay_of"] == tool.headers["x-request-id"] and shown["model"] == model_of("openai")
    assert shown["cost_micro"] == after["cost_micro"] > 0  # metered and billed like any request
    text = fd.gw.cli("replay", tool.headers["x-request-id"], "--model", model_of("openai")).stdout
    assert '-tool call lookup({"input": "mock"})' in text and "+tool call lookup(" in text
    missing = fd.gw.cli("replay", "no-such-request", check=False)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "request_not_found" in missing.stderr


def _wait_for(stream: object, needle: str, deadline: float) -> str:
    seen = ""
    while time.monotonic() < deadline:
        line = stream.readline()  # type: ignore[attr-defined]
        if not line:
            break
        seen += line
        if needle in line:
            return seen
    raise AssertionError(f"never saw {needle!r}: {seen}")


def test_usage_tail_json_follows_requests_in_order_across_a_restart(fd: FrontDoors) -> None:
    key = fd.gw.new_key("tailed")
    other = fd.gw.new_key("not-tailed")
    tail = subprocess.Popen(
        [GATEWAYCTL, "usage", "tail", "--json", "--project", "tailed", "--count", "8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **fd.gw.env},
    )
    try:
        deadline = time.monotonic() + 30
        _wait_for(tail.stderr, "connected", deadline)
        sent = []
        for n in range(4):
            answer = _client(fd, key).chat.completions.with_raw_response.create(
                model=model_of("mock"), messages=[{"role": "user", "content": f"tail {n}"}]
            )
            sent.append(answer.headers["x-request-id"])
        _client(fd, other).chat.completions.create(model=model_of("mock"), messages=[{"role": "user", "content": "x"}])
        fd.gw.stop()
        fd.gw.start()
        _wait_for(tail.stderr, "reconnected", deadline)
        for n in range(4, 8):
            answer = _client(fd, key).chat.completions.with_raw_response.create(
                model=model_of("mock"), messages=[{"role": "user", "content": f"tail {n}"}]
            )
            sent.append(answer.headers["x-request-id"])
        out, _ = tail.communicate(timeout=30)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait(timeout=10)
    assert tail.returncode == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["id"] for row in rows] == sent  # every one, in order, none of the other project's
    assert all(row["project_name"] == "tailed" and row["status"] == "ok" for row in rows)
    assert all(row["cost_micro"] > 0 and row["output_tokens"] > 0 for row in rows)


def test_idempotent_retries_with_the_sdk_one_call_one_charge_across_a_restart(fd: FrontDoors) -> None:
    key = fd.gw.new_key("idempotent")
    fd.openai_up.set_behavior(delay_ms=300)
    body = {"model": model_of("openai"), "messages": [{"role": "user", "content": "charge me once"}]}
    headers = {"idempotency-key": "order-7"}

    def attempt(_: int) -> tuple[int, dict[str, str], object]:
        try:
            raw = _client(fd, key).chat.completions.with_raw_response.create(**body, extra_headers=headers)
            return 200, dict(raw.headers), raw.parse().model_dump()
        except openai.APIStatusError as exc:
            return exc.status_code, dict(exc.response.headers), exc.body

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(attempt, range(10)))
    statuses = sorted(status for status, _, _ in answers)
    assert statuses.count(200) >= 1 and set(statuses) <= {200, 409}, statuses
    assert all(h.get("retry-after") for status, h, _ in answers if status == 409)
    assert len(fd.openai_up.received()) == 1
    first = next(b for status, h, b in answers if status == 200 and "idempotent-replayed" not in h)
    fd.openai_up.set_behavior()
    fd.gw.stop()
    fd.gw.start()
    again = _client(fd, key).chat.completions.with_raw_response.create(**body, extra_headers=headers)
    assert again.headers["idempotent-replayed"] == "true" and again.parse().model_dump() == first
    assert len(fd.openai_up.received()) == 1
    billed = fd.gw.cli_json("usage", "--since", "1h", "--project", "idempotent")["data"]
    assert [row["requests"] for row in billed] == [1]  # one usage row: one charge
    try:
        _client(fd, key).chat.completions.create(**{**body, "temperature": 0.5}, extra_headers=headers)
        raise AssertionError("another body with the same key must be refused")
    except openai.UnprocessableEntityError as exc:
        assert exc.code == "idempotency_key_mismatch"


def test_v1_usage_equals_the_ledger_and_is_scoped(fd: FrontDoors) -> None:
    mine, theirs = fd.gw.new_key("usage-mine"), fd.gw.new_key("usage-theirs")
    started = int(time.time()) - 1
    for n in range(3):
        _client(fd, mine).chat.completions.create(
            model=model_of("mock"), messages=[{"role": "user", "content": f"usage {n}"}]
        )
    _client(fd, theirs).chat.completions.create(model=model_of("openai"), messages=[{"role": "user", "content": "x"}])
    ended = int(time.time()) + 1
    answer = httpx.get(
        f"{fd.gw.url}/v1/usage",
        params={"start": started, "end": ended, "group_by": "model"},
        headers={"authorization": f"Bearer {mine}"},
    )
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert [row["model"] for row in data] == [model_of("mock")] and data[0]["requests"] == 3
    history = fd.gw.cli_json("wallet", "history", "--project", "usage-mine")
    debits = -sum(entry["amount_micro"] for entry in history if entry["kind"] == "usage")
    assert data[0]["cost_micro"] == debits > 0
    theirs_seen = httpx.get(
        f"{fd.gw.url}/api/v1/usage", params={"start": started}, headers={"authorization": f"Bearer {theirs}"}
    ).json()["data"]
    assert sum(row["requests"] for row in theirs_seen) == 1
