"""A worker process for the ledger concurrency test: closes `count` requests on one project through its own
PostgresStore (usage + debit + outbox event in one transaction each, many in flight at once), and tries
once to append an adjustment every worker also tries (unique by its source id). Prints a JSON summary.

Usage: python -m tests.scale.ledger_worker URL KEY_HEX PROJECT_ID KEY_ID PREFIX COUNT
"""

from __future__ import annotations

import asyncio
import json
import sys

from server.billing.ledger import LedgerChain
from server.gateway import recovery
from server.settings import StorageSettings, StoreSettings
from server.store.postgres.store import PostgresStore
from server.store.protocol import Closing, Event, HoldRecord, Intent
from server.types import Call, Caller, Charge, Outcome, Usage

CARD = {"input": 1_000_000, "output": 2_000_000}
IN_FLIGHT = 32


async def main(url: str, key_hex: str, project_id: str, key_id: str, prefix: str, count: int) -> dict[str, int]:
    store = PostgresStore(StoreSettings(url=url), StorageSettings(), LedgerChain(bytes.fromhex(key_hex)))
    await store.open(0, recovery)
    caller = Caller(project_id, key_id, "127.0.0.1")
    debited = 0
    try:

        async def one(i: int) -> int:
            request_id = f"{prefix}-{i}"
            call = Call(request_id=request_id, endpoint="chat", model="m", body={}, started_ms=1_000 + i)
            hold = HoldRecord(request_id, project_id, key_id, 10_000, True, CARD)
            micro = 100 + i % 7
            outcome = Outcome(
                status="ok", http_status=200, usage=Usage(input_tokens=10, output_tokens=i % 5),
                charge=Charge(micro=micro, card=CARD), ended_ms=2_000 + i,
            )  # fmt: skip
            event = Event(f"evt-{request_id}", "request.completed", project_id, {"id": request_id}, 2_000 + i)
            store.record_intent(Intent(caller, call, hold))
            await store.record_closing(Closing(caller, call, outcome, hold.id, "settled", (event,)))
            return micro

        for start in range(0, count, IN_FLIGHT):
            debited += sum(await asyncio.gather(*(one(i) for i in range(start, min(count, start + IN_FLIGHT)))))
        _, created = await store.append_ledger(project_id, "adjustment", "shared-bonus", 500, "bonus", 3_000)
    finally:
        await store.close()
    return {"debited": debited, "bonus_created": int(created)}


if __name__ == "__main__":
    url, key_hex, project_id, key_id, prefix, count = sys.argv[1:7]
    print(json.dumps(asyncio.run(main(url, key_hex, project_id, key_id, prefix, int(count)))))
