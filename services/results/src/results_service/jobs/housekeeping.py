"""Forgets old idempotency records: the consumers' inbox and processed import chunks.

Both only need to outlive any redelivery or re-send (DLQ replays included);
kept forever they grow with every message. One replica at a time runs it (a
lease); the deletes are idempotent anyway, each in its own short transaction.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from service_kit.db import Database
from service_kit.jobs import PeriodicJob
from service_kit.messaging.inbox import purge_inbox
from sqlalchemy import delete, func

from results_service.settings import SCHEMA, ResultsSettings
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


def housekeeping_job(db: Database, settings: ResultsSettings) -> PeriodicJob:
    """The purge as a kit periodic job, run by one replica at a time."""
    retention = timedelta(days=settings.idempotency_retention_days)

    async def run() -> None:
        inbox, chunks = await purge_idempotency_records(db, retention)
        if inbox or chunks:
            log.info("purged %d inbox ids and %d processed chunks", inbox, chunks)

    return PeriodicJob(
        "purge-idempotency-records",
        run,
        interval_seconds=settings.housekeeping_interval_seconds,
        jitter=0.2,
        first_run_after=0.1,
        once_across_replicas=True,
    )
