"""Periodic housekeeping, once across replicas: forget old inbox ids and old attempts.

Notifications themselves stay (they are the user's inbox); the inbox's message
ids are kept ``IDEMPOTENCY_RETENTION_DAYS`` (a redelivery after that long is
still caught by the (user, cause) key), delivery attempts
``ATTEMPTS_RETENTION_DAYS``.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from service_kit.db import Database
from service_kit.jobs import PeriodicJob
from service_kit.messaging.inbox import purge_inbox
from sqlalchemy import text

from notifier_service.settings import SCHEMA, NotifierSettings

log = logging.getLogger(__name__)


def housekeeping_job(db: Database, settings: NotifierSettings) -> PeriodicJob:
    async def run() -> None:
        async with db.transaction() as session:
            await purge_inbox(
                session,
                schema=SCHEMA,
                older_than=timedelta(days=settings.idempotency_retention_days),
            )
            result = await session.execute(
                text(
                    "DELETE FROM notifier.delivery_attempts "
                    "WHERE at < now() - make_interval(days => :days)"
                ),
                {"days": settings.attempts_retention_days},
            )
        removed = int(getattr(result, "rowcount", 0) or 0)
        if removed:
            log.info("housekeeping: removed %d old delivery attempts", removed)

    return PeriodicJob(
        "notifier-housekeeping",
        run,
        interval_seconds=settings.housekeeping_interval_seconds,
        jitter=0.2,
        first_run_after=5.0,
        once_across_replicas=True,
    )
