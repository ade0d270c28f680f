"""Scheduled publication: a poller every replica runs; each exam is published once.

The poller is a kit periodic job on every replica. The schedule lives in
PostgreSQL (``exams.status = 'scheduled'``, ``publish_at``), so it survives
restarts and needs no leader: every poll claims due exams one at a time with
``FOR UPDATE SKIP LOCKED`` and publishes in the claiming transaction (status
change and ``results.published`` events commit together), so two replicas can
never publish the same exam.

An exam whose results went stale after it was scheduled (marks corrected
meanwhile) is regenerated first — through the same coalescing runner as
everything else — and published on the next claim once fresh. We publish what
the admin scheduled, the results, with every mark written by then; holding a
due publication back for a manual re-publish would leave students waiting on
a correction nobody is asked to confirm (ADR 0006).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from service_kit.db import Database
from service_kit.jobs import JobTrigger, PeriodicJob

from results_service.generation.metrics import AUTOREGEN
from results_service.generation.runner import GenerationRunner
from results_service.publication.service import DueOutcome, publish_next_due

log = logging.getLogger(__name__)


class PublicationScheduler:
    """Publishes due scheduled exams: a periodic job on every replica, and a background
    service whose stop cancels the regenerations it started."""

    def __init__(
        self,
        db: Database,
        runner: GenerationRunner,
        *,
        poll_seconds: float = 1.0,
        regenerate_timeout_seconds: float = 300.0,
    ) -> None:
        self._db = db
        self._runner = runner
        self._poll = poll_seconds
        self._regenerate_timeout = regenerate_timeout_seconds
        self._regenerating: dict[uuid.UUID, asyncio.Task[None]] = {}
        # Fired when a due exam finished regenerating: publish it now, not a poll later.
        self._due_again = JobTrigger()

    def periodic_job(self) -> PeriodicJob:
        return PeriodicJob(
            "publish-due-exams",
            self.run_once,
            interval_seconds=self._poll,
            jitter=0.2,
            first_run_after=0.0,
            trigger=self._due_again,
        )

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        """Cancels regenerations of due exams in flight (the next poll starts them again)."""
        tasks = list(self._regenerating.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._regenerating.clear()

    async def run_once(self) -> list[DueOutcome]:
        """Publishes every due, fresh exam; starts regenerating due stale ones."""
        outcomes: list[DueOutcome] = []
        skip = list(self._regenerating)
        while True:
            outcome = await publish_next_due(self._db, skip=skip)
            if outcome is None:
                return outcomes
            outcomes.append(outcome)
            if outcome.published:
                log.info(
                    "published scheduled exam %s (%d recipient events)",
                    outcome.exam_id,
                    outcome.events,
                )
            else:
                skip.append(outcome.exam_id)
                self._regenerate(outcome.exam_id)

    def _regenerate(self, exam_id: uuid.UUID) -> None:
        if exam_id in self._regenerating:
            return

        async def regenerate() -> None:
            try:
                await self._runner.ensure_fresh(exam_id, timeout_seconds=self._regenerate_timeout)
                AUTOREGEN.labels("schedule", "fresh").inc()
            except Exception:
                AUTOREGEN.labels("schedule", "failed").inc()
                log.exception("regenerating due exam %s failed; retrying on a later poll", exam_id)
            finally:
                self._regenerating.pop(exam_id, None)
                self._due_again.fire()

        log.info("scheduled exam %s is due but stale: regenerating before publishing", exam_id)
        self._regenerating[exam_id] = asyncio.create_task(
            regenerate(), name=f"results-publish-regenerate-{exam_id}"
        )
