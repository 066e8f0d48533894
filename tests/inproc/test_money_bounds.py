"""Money is never minted, overspent or leaked, whatever the client or the upstream sends."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from tests.inproc.harness import UPSTREAM_KEY, auth, running, upstream_behavior, upstream_received

BUDGETED = """
[limits]
default_max_output_tokens = 1000
"""


def _spend(database: Path, project_id: str) -> int:
    with sqlite3.connect(database) as conn:
        return int(
            conn.execute(
                "SELECT COALESCE(SUM(cost_micro), 0) FROM usage WHERE project_id = ?", (project_id,)
            ).fetchone()[0]
        )


def _unresolved(database: Path) -> int:
    with sqlite3.connect(database) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM requests WHERE status = 'pending'").fetchone()[0])


async def test_omitted_max_tokens_cannot_overspend_a_budget_under_concurrency(tmp_path: Path) -> None:
    from tests.inproc.harness import BASE_CONFIG

    async with running(tmp_path, BASE_CONFIG + BUDGETED) as gw:
        project = await gw.project("p", monthly_budget="0.05")
        key = await gw.key("p")
        upstream_behavior(reply_words=20_000)  # a long answer unless the request carries a cap
        answers = await asyncio.gather(*(gw.chat(key, model="gpt-4o-mini") for _ in range(100)))
        await gw.quiesce()
        statuses = sorted({a.status_code for a in answers})
        assert set(statuses) <= {200, 402}, statuses
        caps = [r["json"].get("max_completion_tokens") or r["json"].get("max_tokens") for r in upstream_received()]
        assert caps and all(cap == 1000 for cap in caps), caps[:5]
        one_request = 1000 * 2  # micro: 1000 output tokens at 2 per 1M... plus input
        assert _spend(gw.database, project["id"]) <= 50_000 + one_request
        assert gw.gateway.budgets.open_holds == 0 and _unresolved(gw.database) == 0


async def test_n_multiplies_the_reservation_and_the_cap(tmp_path: Path) -> None:
    from tests.inproc.harness import BASE_CONFIG

    async with running(tmp_path, BASE_CONFIG + BUDGETED) as gw:
        project = await gw.project("p", monthly_budget="0.05")
        key = await gw.key("p")
        upstream_behavior(reply_words=20_000)
        answers = await asyncio.gather(*(gw.chat(key, model="gpt-4o-mini", n=8) for _ in range(40)))
        await gw.quiesce()
        assert {a.status_code for a in answers} <= {200, 402}
        assert _spend(gw.database, project["id"]) <= 50_000 + 8 * 1000 * 2 + 1000


async def test_a_prepaid_wallet_never_goes_below_zero(tmp_path: Path) -> None:
    from tests.inproc.harness import BASE_CONFIG

    async with running(tmp_path, BASE_CONFIG + BUDGETED) as gw:
        project = await gw.project("w", billing="prepaid")
        await gw.admin.post("/admin/v1/wallet/credit", json={"project": "w", "amount": "0.03", "reason": "seed"})
        key = await gw.key("w")
        upstream_behavior(reply_words=20_000)
        await asyncio.gather(*(gw.chat(key, model="gpt-4o-mini") for _ in range(60)))
        await gw.quiesce()
        with sqlite3.connect(gw.database) as conn:
            balance = conn.execute("SELECT balance_micro FROM projects WHERE id = ?", (project["id"],)).fetchone()[0]
        assert balance >= 0


async def test_malformed_output_caps_are_refused_with_400(tmp_path: Path) -> None:
    async with running(tmp_path) as gw:
        await gw.project("p")
        key = await gw.key("p")
        bad = [
            {"max_tokens": "100"},
            {"max_tokens": -1},
            {"max_tokens": 0},
            {"max_tokens": 1.5},
            {"max_tokens": True},
            {"max_completion_tokens": 10**30},
            {"n": 0},
            {"n": "2"},
            {"n": 1000},
            {"n": -3},
        ]
        for fields in bad:
            answer = await gw.chat(key, model="mock-chat", **fields)
            assert answer.status_code == 400, (fields, answer.status_code, answer.text)
            error = answer.json()["error"]
            assert error["param"] == next(iter(fields)), (fields, error)


async def test_provider_usage_is_untrusted_input(tmp_path: Path) -> None:
    async with running(tmp_path) as gw:
        project = await gw.project("p")
        key = await gw.key("p")
        weird = [
            {"prompt_tokens": -1_000_000_000, "completion_tokens": 5, "total_tokens": 5},
            None,
            "lots",
            {"prompt_tokens": "12", "completion_tokens": 3},
            {"prompt_tokens": 3.5, "completion_tokens": [1]},
            {"prompt_tokens": 10**40, "completion_tokens": 1},
            {"prompt_tokens": 5, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": -9}},
        ]
        for usage in weird:
            upstream_behavior(replace_usage=True, usage=usage)
            for stream in (False, True):
                answer = await gw.chat(key, model="gpt-4o-mini", stream=stream)
                assert answer.status_code == 200, (usage, stream, answer.text)
        await gw.quiesce()
        with sqlite3.connect(gw.database) as conn:
            rows = conn.execute("SELECT cost_micro, estimated, input_tokens FROM usage").fetchall()
        assert len(rows) == 2 * len(weird)
        assert all(cost >= 0 for cost, _, _ in rows)
        assert all(estimated == 1 for _, estimated, _ in rows), rows
        assert all(tokens < 10**9 for _, _, tokens in rows)
        assert _spend(gw.database, project["id"]) >= 0
        assert gw.gateway.budgets.open_holds == 0 and _unresolved(gw.database) == 0


async def test_provider_error_text_never_carries_our_provider_key(tmp_path: Path) -> None:
    async with running(tmp_path) as gw:
        await gw.project("p")
        key = await gw.key("p")
        echo = f"Incorrect API key provided: Bearer {UPSTREAM_KEY}. Also sk-proj-abcdefghijklmnopqrstuvwx."
        for status in (401, 400, 500):
            upstream_behavior(status=status, error_message=echo)
            answer = await gw.chat(key, model="gpt-4o-mini")
            assert answer.status_code >= 400
            assert UPSTREAM_KEY not in answer.text and "sk-proj-abcdefghijklmnop" not in answer.text, answer.text
        await gw.quiesce()
        assert UPSTREAM_KEY.encode() not in gw.database.read_bytes()


async def test_an_internal_error_is_recorded_as_an_internal_error(tmp_path: Path) -> None:
    async with running(tmp_path) as gw:
        await gw.project("p")
        key = await gw.key("p")

        async def broken(model: str, body: dict[str, object]) -> dict[str, object]:
            raise RuntimeError("a bug")

        gw.gateway.providers["mock"].chat = broken  # type: ignore[method-assign]
        answer = await gw.client.post(
            "/v1/chat/completions",
            json={"model": "mock-chat", "messages": [{"role": "user", "content": "x"}]},
            headers=auth(key),
        )
        assert answer.status_code == 500
        await gw.quiesce()
        with sqlite3.connect(gw.database) as conn:
            status, http_status = conn.execute("SELECT status, http_status FROM requests").fetchone()
        assert (status, http_status) == ("error", 500)
        assert gw.gateway.budgets.open_holds == 0
