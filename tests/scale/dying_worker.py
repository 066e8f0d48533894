"""A gateway-like process for the lease test: opens a PostgresStore, writes the intents of two requests (a
stream with a checkpoint, and a plain call) and an asynchronous job with its hold, says "ready", then
waits to be killed with SIGKILL.

Usage: python -m tests.scale.dying_worker URL KEY_HEX PROJECT_ID KEY_ID
"""

from __future__ import annotations

import asyncio
import sys

from server.billing.ledger import LedgerChain
from server.gateway import recovery
from server.settings import StorageSettings, StoreSettings
from server.store.media_protocol import Job
from server.store.postgres.store import PostgresStore
from server.store.protocol import HOLD_JOB, HoldRecord, Intent
from server.types import Call, Caller

CARD = {"input": 1_000_000, "output": 2_000_000}


def job(name: str, project_id: str, key_id: str) -> Job:
    """An asynchronous job (video) as the API writes it, with its request id = its hold's id."""
    return Job(name, "video", project_id, key_id, f"req-{name}", "m", {"prompt": "x"}, 1_000, 10**13)


def job_hold(name: str, project_id: str, key_id: str) -> HoldRecord:
    return HoldRecord(f"req-{name}", project_id, key_id, 7_000, True, CARD, kind=HOLD_JOB)


async def main(url: str, key_hex: str, project_id: str, key_id: str) -> None:
    store = PostgresStore(StoreSettings(url=url), StorageSettings(), LedgerChain(bytes.fromhex(key_hex)))
    await store.open(0, recovery)
    caller = Caller(project_id, key_id, "127.0.0.1")
    for request_id, stream in (("req-stream", True), ("req-plain", False)):
        call = Call(request_id=request_id, endpoint="chat", model="m", body={}, started_ms=1_000, stream=stream)
        call.body_bytes = 4_000
        await store.record_intent(Intent(caller, call, HoldRecord(request_id, project_id, key_id, 9_000, True, CARD)))
    store.checkpoint("req-stream", 2_000, 1_500)
    await store.media.create_job(job("job-dead", project_id, key_id), job_hold("job-dead", project_id, key_id))
    await store.flush()
    print("ready", flush=True)
    await asyncio.sleep(600)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
