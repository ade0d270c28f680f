"""Forgets old idempotency records: the consumers' inbox and processed import chunks.

Both only need to outlive any redelivery or re-send (DLQ replays included);
kept forever they grow with every message. Every replica may run this: the
deletes are idempotent, and each runs in its own short transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from service_kit.db import Database
from service_kit.messaging.inbox import purge_inbox
from sqlalchemy import delete, func
from sqlalchemy.exc import SQLAlchemyError

from results_service.runtime import Runtime
from results_service.settings import SCHEMA
from results_service.store.tables import processed_chunks

log = logging.getLogger(__name__)


async def purge_idempotency_records(db: Database, older_than: timedelta) -> tuple[int, int]:
    """Deletes inbox ids and processed chunks older than ``older_than``; returns the counts."""
    async with db.transaction() as session:
        inbox = await purge_inbox(session, schema=SCHEMA, older_than=older_than)
    async with db.transaction() as session:
        result = await session.execute(
            delete(processed_chunks).where(
                processed_chunks.c.processed_at < func.now() - older_than
            )
        )
    return inbox, int(getattr(result, "rowcount", 0) or 0)


class Housekeeping:
    """A :class:`~results_service.runtime.BackgroundService` running the purge periodically."""

    def __init__(self, db: Database, *, retention: timedelta, interval_seconds: float) -> None:
        self._db = db
        self._retention = retention
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="results-housekeeping")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                inbox, chunks = await purge_idempotency_records(self._db, self._retention)
                if inbox or chunks:
                    log.info("purged %d inbox ids and %d processed chunks", inbox, chunks)
            except SQLAlchemyError as exc:
                log.warning("housekeeping skipped: %r", exc)
            await asyncio.sleep(self._interval)


def housekeeping(runtime: Runtime) -> Housekeeping:
    settings = runtime.settings
    return Housekeeping(
        runtime.db,
        retention=timedelta(days=settings.idempotency_retention_days),
        interval_seconds=settings.housekeeping_interval_seconds,
    )
