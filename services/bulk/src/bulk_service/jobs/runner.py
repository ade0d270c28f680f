"""Runs the jobs this worker claims, each in a task of its own under a lease.

A job reaches a worker two ways: its ``bulk.job.requested`` command (the
consumer calls :meth:`JobRunner.take`), or the sweep, which finds unfinished
jobs nobody holds (their worker died, or their command is still in a queue
that another replica's consumer holds). Claiming is one fenced UPDATE, so a
job runs on one worker at a time whichever way it came.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping

from service_kit.db import Database
from service_kit.jobs import PeriodicJob

from bulk_service.domain.jobs import Job, JobKind
from bulk_service.jobs.lease import JobLease, LeaseLost
from bulk_service.jobs.metrics import JOBS_TAKEN
from bulk_service.store import jobs as jobs_store

log = logging.getLogger(__name__)

Work = Callable[[Job, JobLease], Awaitable[None]]


class JobRunner:
    """The worker's job slots (``MAX_RUNNING_JOBS``), a background service of the host."""

    def __init__(
        self,
        db: Database,
        work: Mapping[JobKind, Work],
        *,
        owner: str,
        lease_seconds: float,
        capacity: int,
        sweep_seconds: float,
    ) -> None:
        self._db = db
        self._work = dict(work)
        self.owner = owner
        self._lease_seconds = lease_seconds
        self._capacity = capacity
        self._sweep_seconds = sweep_seconds
        self._running: dict[uuid.UUID, asyncio.Task[None]] = {}
        # Jobs being claimed right now: the job's command and the sweep can take the
        # same job at once, and the claim lets the lease's own owner claim again.
        self._claiming: set[uuid.UUID] = set()
        self._stopping = False

    async def start(self) -> None:
        self._stopping = False

    async def stop(self) -> None:
        """Stops every job in progress; their leases are released so another worker
        (the sweep) takes them over at once instead of after the lease."""
        self._stopping = True
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def free_slots(self) -> int:
        return 0 if self._stopping else self._capacity - len(self._running) - len(self._claiming)

    async def take(self, job_id: uuid.UUID) -> bool:
        """Claims the job and starts it; False when it is not ours to run (finished,
        held by another, waiting for answers) or every slot is busy."""
        if self.free_slots <= 0 or job_id in self._running or job_id in self._claiming:
            return False
        self._claiming.add(job_id)
        try:
            async with self._db.transaction() as session:
                job = await jobs_store.claim_job(session, job_id, self.owner, self._lease_seconds)
        finally:
            self._claiming.discard(job_id)
        if job is None:
            return False
        JOBS_TAKEN.labels(job.kind.value).inc()
        self._running[job_id] = asyncio.create_task(self._run(job), name=f"job-{job_id}")
        return True

    async def _run(self, job: Job) -> None:
        lease = JobLease(self._db, job.id, self.owner, self._lease_seconds)
        lease.start()
        try:
            await self._work[job.kind](job, lease)
        except LeaseLost:
            log.warning("job %s: stopped, another worker holds it now", job.id)
        except asyncio.CancelledError:
            log.info("job %s: stopped with the worker; it will be taken over", job.id)
            raise
        except Exception:
            # Left unfinished with its lease released: the sweep runs it again
            # (its stage says where), on this worker or another.
            log.exception("job %s failed; it will be retried", job.id)
        finally:
            await lease.stop()
            with contextlib.suppress(Exception):
                async with self._db.transaction() as session:
                    await jobs_store.release_lease(session, job.id, self.owner)
            self._running.pop(job.id, None)

    async def sweep(self) -> None:
        """Takes unfinished jobs that no live worker holds, as slots allow."""
        if self.free_slots <= 0:
            return
        async with self._db.read_session(fresh=True) as session:
            candidates = await jobs_store.jobs_needing_a_worker(session, limit=self.free_slots * 2)
        for job_id in candidates:
            if self.free_slots <= 0:
                return
            await self.take(job_id)

    def sweep_job(self) -> PeriodicJob:
        # Not once across replicas: every worker sweeps for itself; claims are exclusive.
        return PeriodicJob(
            "take-over-jobs", self.sweep, interval_seconds=self._sweep_seconds, jitter=0.2
        )
