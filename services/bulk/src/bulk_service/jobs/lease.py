"""A worker's lease on one job, renewed while the job runs (ADR 0014).

The lease is a row field (``jobs.lease_owner`` / ``lease_until``), so it
survives nothing but the database: a worker that dies stops renewing and
the job is free once ``lease_until`` passes. Every write the worker makes for
the job is fenced by the lease (``store.jobs.update_leased``), so a worker
that paused past its lease cannot write after the job changed hands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from service_kit.db import Database

from bulk_service.store import jobs as jobs_store

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """The worker no longer holds the job; it must stop and write nothing more."""


class JobLease:
    """Renews the lease every third of its length until :meth:`stop`."""

    def __init__(self, db: Database, job_id: uuid.UUID, owner: str, seconds: float) -> None:
        self.db = db
        self.job_id = job_id
        self.owner = owner
        self.seconds = seconds
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._beat(), name=f"lease-{self.job_id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def check(self) -> None:
        """Raises :class:`LeaseLost` once a renewal found the job held by another."""
        if self._lost.is_set():
            raise LeaseLost(f"lease on job {self.job_id} lost")

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.seconds / 3)
            try:
                async with self.db.transaction() as session:
                    held = await jobs_store.renew_lease(
                        session, self.job_id, self.owner, self.seconds
                    )
            except Exception:
                # The database being briefly away is not a lost lease: the fenced
                # writes fail too, and the lease may still be ours next beat.
                log.warning("renewing the lease of job %s failed", self.job_id, exc_info=True)
                continue
            if not held:
                log.warning("job %s: lease lost to another worker", self.job_id)
                self._lost.set()
                return
