"""A lock holder in a process of its own, for the paused-holder fault test.

Takes the exam's lock (short lease), issues its fencing token, computes, then
prints ``COMPUTED <token>`` and sleeps briefly so the test can SIGSTOP it
between compute and write. When continued it writes (or is cancelled because
its lease is gone) and prints one JSON line with its outcome.

Usage: python paused_holder.py DATABASE_URL REDIS_URL KEY_PREFIX EXAM_ID LEASE CANCEL_ON_LOSS
"""

from __future__ import annotations

import asyncio
import sys
import uuid

import orjson
from results_service.generation.runner import GenerationRunner, RunnerConfig
from results_service.settings import ResultsSettings
from service_kit.db import Database
from service_kit.lock import DistributedLock, LockLost
from service_kit.redis import create_redis


async def main(
    database_url: str,
    redis_url: str,
    key_prefix: str,
    exam_id: uuid.UUID,
    lease: float,
    cancel: bool,
) -> dict[str, object]:
    settings = ResultsSettings(database_url=database_url, redis_url=redis_url, log_json=False)
    db = Database(settings)
    redis = create_redis(settings)
    tokens: list[int] = []

    async def after_compute(_: uuid.UUID, token: int) -> None:
        tokens.append(token)
        print(f"COMPUTED {token}", flush=True)
        await asyncio.sleep(0.5)  # the test stops us here

    runner = GenerationRunner(
        db,
        None,
        config=RunnerConfig(lease_seconds=lease, cancel_on_lock_loss=cancel, work_mem="64MB"),
        after_compute=after_compute,
    )
    locks = DistributedLock(redis, key_prefix=f"{key_prefix}results:", name="exam")
    outcome = "error"
    try:
        async with (
            locks.hold(str(exam_id), lease, wait_seconds=10, cancel_on_loss=cancel),
            db.primary.connect() as conn,
        ):
            written = await runner.generate(conn, exam_id)
        outcome = "committed" if written is not None else "fenced"
    except LockLost:
        outcome = "lock_lost"
    finally:
        await redis.aclose()
        await db.dispose()
    return {"token": tokens[0] if tokens else None, "outcome": outcome}


if __name__ == "__main__":
    url, redis_url, prefix, exam, lease, cancel = sys.argv[1:7]
    result = asyncio.run(main(url, redis_url, prefix, uuid.UUID(exam), float(lease), cancel == "1"))
    print(orjson.dumps(result).decode(), flush=True)
