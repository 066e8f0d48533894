"""The request log as support reads it: `requests list` filters, `requests show` with bodies, and replay
through the request path (billed, logged with replay_of, compared with the original)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.inproc.harness import BASE_CONFIG, auth, running, upstream_behavior

TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]


def _usage_rows(database: Path) -> dict[str, tuple[int, str]]:
    with sqlite3.connect(database) as conn:
        found = conn.execute(
            "SELECT r.id, u.cost_micro, r.project_id FROM requests r JOIN usage u ON u.request_id = r.id"
        )
        return {rid: (cost, project) for rid, cost, project in found}


async def test_requests_list_filters_and_show_with_bodies(tmp_path: Path) -> None:
    async with running(tmp_path, BASE_CONFIG) as gw:
        await gw.project("alpha")
        await gw.project("beta")
        a, b = await gw.key("alpha"), await gw.key("beta")
        ids = []
        for n in range(3):
            answer = await gw.chat(a, model="mock-chat", messages=[{"role": "user", "content": f"hello {n} {a}"}])
            ids.append(answer.headers["x-request-id"])
        upstream_behavior(status=400, times=1)
        failed = await gw.chat(b, model="gpt-4o-mini")
        assert failed.status_code == 400
        await gw.quiesce()

        listed = (await gw.admin.get("/admin/v1/requests", params={"project": "alpha"})).json()["data"]
        assert [row["id"] for row in listed] == ids[::-1]  # newest first
        assert all(row["project_name"] == "alpha" and row["has_bodies"] for row in listed)
        assert (await gw.admin.get("/admin/v1/requests", params={"limit": 2})).json()["data"][0][
            "project_name"
        ] == "beta"
        only_failed = (await gw.admin.get("/admin/v1/requests", params={"status": "failed"})).json()["data"]
        assert [row["project_name"] for row in only_failed] == ["beta"]
        by_model = (await gw.admin.get("/admin/v1/requests", params={"model": "gpt-4o-mini"})).json()["data"]
        assert len(by_model) == 1 and by_model[0]["status"] != "ok"
        paged = await gw.admin.get("/admin/v1/requests", params={"until_ms": listed[1]["started_ms"] + 1, "limit": 1})
        assert paged.json()["data"][0]["started_ms"] <= listed[1]["started_ms"]
        assert (await gw.admin.get("/admin/v1/requests", params={"status": "nope"})).status_code == 400
        assert (await gw.admin.get("/admin/v1/requests", params={"project": "gamma"})).status_code == 404

        shown = (await gw.admin.get(f"/admin/v1/requests/{ids[0]}")).json()
        request_body, answer_body = shown["bodies"]["request"], shown["bodies"]["response"]
        assert a not in str(request_body) and "[redacted]" in request_body["messages"][0]["content"]
        assert answer_body["choices"][0]["message"]["content"].startswith("Mock reply: hello 0")
        hidden = (await gw.admin.get(f"/admin/v1/requests/{ids[0]}", params={"bodies": "false"})).json()
        assert "bodies" not in hidden


async def test_replay_with_another_model_is_billed_logged_and_compared(tmp_path: Path) -> None:
    async with running(tmp_path, BASE_CONFIG) as gw:
        await gw.project("alpha")
        key = await gw.key("alpha")
        first = await gw.chat(key, model="mock-chat", messages=[{"role": "user", "content": "compare me"}])
        original = first.headers["x-request-id"]
        await gw.quiesce()
        upstream_behavior(reply_words=4)
        answer = await gw.admin.post(f"/admin/v1/requests/{original}/replay", json={"model": "gpt-4o-mini"})
        assert answer.status_code == 200, answer.text
        sides = answer.json()
        before, after = sides["original"], sides["replay"]
        assert before["answer"]["text"] == "Mock reply: compare me"
        assert after["answer"]["text"] == "w0 w1 w2 w3"
        assert (before["model"], after["model"]) == ("mock-chat", "gpt-4o-mini")
        assert after["replay_of"] == original and after["status"] == "ok" and after["output_tokens"] == 4
        billed = _usage_rows(gw.database)
        assert billed[after["id"]][0] == after["cost_micro"] > 0  # a usage row of its own, on the same project
        assert billed[after["id"]][1] == billed[original][1]
        listed = (await gw.admin.get("/admin/v1/requests", params={"limit": 1})).json()["data"][0]
        assert listed["id"] == after["id"] and listed["replay_of"] == original


async def test_replay_of_a_streamed_tool_call_pinned_to_a_target(tmp_path: Path) -> None:
    async with running(tmp_path, BASE_CONFIG) as gw:
        await gw.project("alpha")
        key = await gw.key("alpha")
        streamed = await gw.chat(key, model="mock-chat", stream=True, tools=TOOLS)
        assert streamed.status_code == 200
        await gw.quiesce()
        original = streamed.headers["x-request-id"]
        answer = await gw.admin.post(f"/admin/v1/requests/{original}/replay", json={"target": "up:gpt-4o-mini"})
        assert answer.status_code == 200, answer.text
        before, after = answer.json()["original"], answer.json()["replay"]
        assert before["stream"] and after["stream"]
        assert before["answer"]["tool_calls"][0]["name"] == after["answer"]["tool_calls"][0]["name"] == "lookup"
        assert before["answer"]["finish_reason"] == after["answer"]["finish_reason"] == "tool_calls"
        assert (after["provider"], after["model"]) == ("up", "mock-chat")  # priced as the original's model
        assert after["cost_micro"] > 0
        wrong = await gw.admin.post(f"/admin/v1/requests/{original}/replay", json={"target": "nowhere:x"})
        assert wrong.status_code == 400 and "provider" in wrong.json()["error"]["message"]


async def test_replay_billed_to_another_project_and_refusals(tmp_path: Path) -> None:
    config = BASE_CONFIG + "\n[logging]\nmax_body_bytes = 1024\n"
    async with running(tmp_path, config) as gw:
        await gw.project("alpha")
        await gw.project("beta")
        key = await gw.key("alpha")
        original = (await gw.chat(key, model="mock-chat")).headers["x-request-id"]
        long = await gw.chat(key, model="mock-chat", messages=[{"role": "user", "content": "x" * 4000}])
        await gw.quiesce()
        moved = (await gw.admin.post(f"/admin/v1/requests/{original}/replay", json={"project": "beta"})).json()
        beta = (await gw.admin.get("/admin/v1/projects/beta")).json()["id"]
        assert _usage_rows(gw.database)[moved["replay"]["id"]][1] == beta

        cut = await gw.admin.post(f"/admin/v1/requests/{long.headers['x-request-id']}/replay", json={})
        assert cut.status_code == 409 and "max_body_bytes" in cut.json()["error"]["message"]
        both = await gw.admin.post(f"/admin/v1/requests/{original}/replay", json={"model": "a", "target": "b:c"})
        assert both.status_code == 400
        key_id = (await gw.admin.get("/admin/v1/keys", params={"project": "alpha"})).json()["data"][0]["id"]
        await gw.admin.post(f"/admin/v1/keys/{key_id}/revoke")
        revoked = await gw.admin.post(f"/admin/v1/requests/{original}/replay", json={})
        assert revoked.status_code == 409 and revoked.json()["error"]["code"] == "replay_key_inactive"
        assert (await gw.admin.post("/admin/v1/requests/nope/replay", json={})).status_code == 404


async def test_replay_of_a_request_without_bodies_says_why(tmp_path: Path) -> None:
    config = BASE_CONFIG + '\n[logging]\nbodies = "off"\n'
    async with running(tmp_path, config) as gw:
        await gw.project("alpha")
        key = await gw.key("alpha")
        original = (
            await gw.client.post(
                "/v1/chat/completions",
                json={"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]},
                headers=auth(key),
            )
        ).headers["x-request-id"]
        await gw.quiesce()
        refused = await gw.admin.post(f"/admin/v1/requests/{original}/replay", json={})
        assert refused.status_code == 409
        assert 'bodies = "off"' in refused.json()["error"]["message"]
        shown = (await gw.admin.get(f"/admin/v1/requests/{original}")).json()
        assert shown["bodies"] is None and "off" in shown["bodies_missing"]
