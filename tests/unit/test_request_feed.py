"""The usage tail's feed: committed closings reach only the followers whose filters match, a slow
follower loses the oldest rows (and is told how many), and a stop ends every follower."""

from __future__ import annotations

import asyncio
from typing import Any

from server.request_feed import FOLLOWER_QUEUE, Filters, RequestFeed


class _Closing:
    """Only what `row_of` reads."""

    def __init__(self, n: int, project: str = "prj_a", status: str = "ok", model: str = "m") -> None:
        from server.types import Call, Caller, Charge, Outcome, Target, Usage

        self.caller = Caller(project_id=project, key_id="key_1", client_ip="127.0.0.1")
        self.call = Call(request_id=f"r{n}", endpoint="chat", model=model, body={}, started_ms=1_000)
        self.outcome = Outcome(
            status=status,
            http_status=200 if status == "ok" else 502,
            target=Target("mock", "m"),
            usage=Usage(input_tokens=3, output_tokens=4),
            charge=Charge(11, {}),
            ended_ms=1_250,
        )


def _closing(n: int, **fields: Any) -> Any:
    return _Closing(n, **fields)


def test_followers_get_what_matches_in_order() -> None:
    asyncio.run(_followers_get_what_matches_in_order())


async def _followers_get_what_matches_in_order() -> None:
    feed = RequestFeed()
    everything = feed.follow(Filters())
    failed_b = feed.follow(Filters(project_id="prj_b", status="failed"))
    feed.publish(_closing(1))
    feed.publish(_closing(2, project="prj_b", status="upstream_failed"))
    feed.publish(_closing(3, project="prj_b"))
    rows, dropped = await everything.next_batch(0.1)
    assert [row["id"] for row in rows] == ["r1", "r2", "r3"] and dropped == 0
    assert rows[0]["latency_ms"] == 250 and rows[0]["project_id"] == "prj_a"
    assert (rows[0]["input_tokens"], rows[0]["output_tokens"], rows[0]["cost"]) == (3, 4, "0.000011")
    rows, _ = await failed_b.next_batch(0.1)
    assert [row["id"] for row in rows] == ["r2"]


def test_a_slow_follower_loses_the_oldest_and_is_told() -> None:
    asyncio.run(_a_slow_follower_loses_the_oldest_and_is_told())


async def _a_slow_follower_loses_the_oldest_and_is_told() -> None:
    feed = RequestFeed()
    follower = feed.follow(Filters())
    for n in range(FOLLOWER_QUEUE + 5):
        feed.publish(_closing(n))
    rows, dropped = await follower.next_batch(0.1)
    assert dropped == 5 and len(rows) == FOLLOWER_QUEUE and rows[0]["id"] == "r5"


def test_an_idle_wait_times_out_and_close_ends_followers() -> None:
    asyncio.run(_an_idle_wait_times_out_and_close_ends_followers())


async def _an_idle_wait_times_out_and_close_ends_followers() -> None:
    feed = RequestFeed()
    follower = feed.follow(Filters())
    assert await follower.next_batch(0.05) == ([], 0)
    waiting = asyncio.create_task(follower.next_batch(5))
    await asyncio.sleep(0.01)
    feed.close()
    assert await asyncio.wait_for(waiting, 1) == ([], 0) and follower.ended and len(feed) == 0
