"""Periodic jobs: the one way a service runs work on a timer.

A job is declared as a :class:`PeriodicJob` (a name, a coroutine function, an
interval) and run by :class:`PeriodicJobs`, which every service host and the
gateway use. Each job gets:

* an interval with jitter, so replicas started together (a rollout) do not
  run in lockstep;
* optionally, once across replicas: a lease row in PostgreSQL
  (``<schema>.job_leases``) that a run must claim, so two replicas never run
  the same job at once, a job runs about once per interval across the fleet,
  and a dead holder's lease simply expires;
* metrics: runs by outcome, duration, and the time of the last success, so an
  alert can notice a job that stopped succeeding;
* failure isolation: an exception is logged and counted, and the job runs
  again at its next tick (a failing job never stops the loop);
* a clean stop that cancels a run in progress and waits for it;
* a :class:`JobTrigger` to run a job early (e.g. the publication scheduler
  after a regeneration finished).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from opentelemetry.instrumentation.utils import suppress_instrumentation
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import text

from service_kit.db import Database, checked_schema

log = logging.getLogger(__name__)

JOB_RUNS = Counter(
    "periodic_job_runs_total",
    "Runs of periodic jobs by outcome: ok, failed, or skipped (another replica held the lease).",
    ["periodic_job", "outcome"],
)
JOB_DURATION = Histogram(
    "periodic_job_duration_seconds",
    "Duration of one run of a periodic job (runs that did the work only).",
    ["periodic_job"],
    buckets=(0.005, 0.025, 0.1, 0.5, 1, 5, 15, 60, 300, 1800),
)
JOB_LAST_SUCCESS = Gauge(
    "periodic_job_last_success_timestamp_seconds",
    "Unix time of the last successful run of a periodic job (0 until the first).",
    ["periodic_job"],
)
JOB_INTERVAL = Gauge(
    "periodic_job_interval_seconds",
    "The interval a periodic job is scheduled at (before jitter): an alert compares the "
    "age of its last success with it.",
    ["periodic_job"],
)

JobRun = Callable[[], Awaitable[object]]
_FAILURE_LOG_INTERVAL_SECONDS = 60.0


class JobTrigger:
    """Lets a component run its job before the interval is up (more work became due)."""

    def __init__(self) -> None:
        # Created outside a loop is fine: an Event binds to the loop that first waits.
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()

    async def wait(self, timeout_seconds: float) -> None:
        """Returns when fired or after ``timeout_seconds``, whichever is first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout_seconds)
        self._event.clear()


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    """A job that runs every ``interval_seconds``.

    ``jitter`` spreads each wait uniformly over ``interval * (1 ± jitter)``.
    ``first_run_after`` is the wait before the first run as a fraction of the
    interval (jittered too): 0 runs at start, 1 waits a whole interval.
    ``once_across_replicas`` claims a lease in the host's database first; the
    lease lasts ``lease_seconds`` (default: the interval, at least 30 s) and
    is renewed while the run goes on, so a long run is never taken over by
    another replica, while a crashed holder's lease runs out.
    """

    name: str
    run: JobRun
    interval_seconds: float
    jitter: float = 0.1
    first_run_after: float = 1.0
    once_across_replicas: bool = False
    lease_seconds: float | None = None
    trigger: JobTrigger | None = None
    """Fired by the job's component to run it early."""

    def __post_init__(self) -> None:
        if self.interval_seconds <= 0:
            raise ValueError(f"job {self.name}: interval must be positive")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"job {self.name}: jitter must be in [0, 1)")

    @property
    def lease(self) -> float:
        return self.lease_seconds or max(self.interval_seconds, 30.0)

    def next_wait(self, *, first: bool = False) -> float:
        base = self.interval_seconds * (self.first_run_after if first else 1.0)
        return max(0.0, base * random.uniform(1 - self.jitter, 1 + self.jitter))


def holder_id() -> str:
    """Who holds a lease: host, process and a random part (two pods may share a pid)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class JobLeases:
    """Leases of once-across-replicas jobs in ``<schema>.job_leases``.

    Every time is the database's (``now()``), so replica clocks never matter.
    A claim succeeds when nobody holds the lease (or it expired) and the job
    is due; finishing releases it and sets when the job is next due, so N
    replicas polling every interval run it about once per interval in all.
    """

    def __init__(self, db: Database, schema: str, holder: str | None = None) -> None:
        self._db = db
        self.holder = holder or holder_id()
        table = f"{checked_schema(schema)}.job_leases"
        self._claim = text(
            f"INSERT INTO {table} AS l (name, holder, expires_at, next_run_at) "  # noqa: S608
            "VALUES (:name, :holder, now() + make_interval(secs => :lease), now()) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
            "expires_at = excluded.expires_at "
            "WHERE l.expires_at <= now() AND l.next_run_at <= now() "
            "RETURNING l.holder"
        )
        self._renew = text(
            f"UPDATE {table} SET expires_at = now() + make_interval(secs => :lease) "  # noqa: S608
            "WHERE name = :name AND holder = :holder AND expires_at > now()"
        )
        self._release = text(
            f"UPDATE {table} SET expires_at = now(), "  # noqa: S608
            "next_run_at = now() + make_interval(secs => :due_in) "
            "WHERE name = :name AND holder = :holder"
        )

    async def claim(self, name: str, lease_seconds: float) -> bool:
        async with self._db.autocommit() as conn:
            row = await conn.execute(
                self._claim, {"name": name, "holder": self.holder, "lease": lease_seconds}
            )
            return row.first() is not None

    async def renew(self, name: str, lease_seconds: float) -> bool:
        """Extends the lease; False when it was lost (expired and maybe taken)."""
        async with self._db.autocommit() as conn:
            result = await conn.execute(
                self._renew, {"name": name, "holder": self.holder, "lease": lease_seconds}
            )
            return bool(getattr(result, "rowcount", 0))

    async def release(self, name: str, *, due_in_seconds: float) -> None:
        async with self._db.autocommit() as conn:
            await conn.execute(
                self._release, {"name": name, "holder": self.holder, "due_in": due_in_seconds}
            )


class LeaseLost(RuntimeError):
    """The lease of a running job expired before it could be renewed."""


class PeriodicJobs:
    """Runs a set of :class:`PeriodicJob` in background tasks of the current loop."""

    def __init__(self, jobs: Iterable[PeriodicJob], *, leases: JobLeases | None = None) -> None:
        self.jobs = {job.name: job for job in jobs}
        self._leases = leases
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._failures: dict[str, tuple[int, float]] = {}
        """Job -> (failed runs in a row, when the last one was logged)."""
        for job in self.jobs.values():
            if job.once_across_replicas and leases is None:
                raise ValueError(f"job {job.name} runs once across replicas: it needs leases")
            JOB_LAST_SUCCESS.labels(job.name)  # exported as 0 before the first success
            JOB_INTERVAL.labels(job.name).set(job.interval_seconds)
            # Counted from 0, so the first failure is an increase() too.
            JOB_RUNS.labels(job.name, "ok")
            JOB_RUNS.labels(job.name, "failed")

    def start(self) -> None:
        # Not traced (the tasks inherit the suppression): most jobs poll every few
        # seconds (revocations twice a second), and a trace per tick would bury the
        # requests'. An event a job writes is traced from the relay's PRODUCER span on.
        with suppress_instrumentation():
            for name, job in self.jobs.items():
                if name not in self._tasks:
                    self._tasks[name] = asyncio.create_task(self._loop(job), name=f"job:{name}")

    async def stop(self) -> None:
        """Cancels every loop (and a run in progress) and waits for them to end."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run_once(self, name: str) -> bool:
        """One run of ``name`` as the loop would do it; False when skipped or failed."""
        return await self._run(self.jobs[name])

    async def _loop(self, job: PeriodicJob) -> None:
        wait = job.next_wait(first=True)
        while True:
            if job.trigger is not None:
                await job.trigger.wait(wait)
            else:
                await asyncio.sleep(wait)
            await self._run(job)
            wait = job.next_wait()

    async def _run(self, job: PeriodicJob) -> bool:
        if job.once_across_replicas:
            assert self._leases is not None
            try:
                claimed = await self._leases.claim(job.name, job.lease)
            except Exception as exc:
                JOB_RUNS.labels(job.name, "failed").inc()
                log.warning("job %s: could not claim its lease: %r", job.name, exc)
                return False
            if not claimed:
                JOB_RUNS.labels(job.name, "skipped").inc()
                return False
        started = time.perf_counter()
        ok = False
        try:
            if job.once_across_replicas:
                await self._run_under_lease(job)
            else:
                await job.run()
            ok = True
        except Exception:
            self._log_failure(job)
        finally:
            # A run cancelled by stop() is neither a success nor a failure; its
            # lease is still released so another replica need not wait it out.
            if job.once_across_replicas:
                await self._release(job, ok=ok)
        JOB_DURATION.labels(job.name).observe(time.perf_counter() - started)
        JOB_RUNS.labels(job.name, "ok" if ok else "failed").inc()
        if ok:
            JOB_LAST_SUCCESS.labels(job.name).set(time.time())
            failures = self._failures.pop(job.name, None)
            if failures is not None:
                log.info("job %s succeeded after %d failed runs", job.name, failures[0])
        return ok

    def _log_failure(self, job: PeriodicJob) -> None:
        """Logs a failure with its traceback; a failing streak then once a minute.

        A job with a sub-second interval (the revocation sync) failing while a
        dependency is down would otherwise write a traceback twice a second.
        """
        count, logged_at = self._failures.get(job.name, (0, float("-inf")))
        count += 1
        now = time.monotonic()
        if now - logged_at >= _FAILURE_LOG_INTERVAL_SECONDS:
            log.exception(
                "job %s failed (%d in a row); it runs again at its next tick", job.name, count
            )
            logged_at = now
        self._failures[job.name] = (count, logged_at)

    async def _run_under_lease(self, job: PeriodicJob) -> None:
        assert self._leases is not None
        leases = self._leases
        work = asyncio.ensure_future(job.run())
        try:
            while True:
                done, _ = await asyncio.wait({work}, timeout=job.lease / 3)
                if done:
                    work.result()
                    return
                # Renewed at a third of the lease: two renewals can fail before
                # it runs out, and a holder paused past it stops on its own.
                if not await leases.renew(job.name, job.lease):
                    work.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await work
                    raise LeaseLost(f"job {job.name} lost its lease while running")
        finally:
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await work

    async def _release(self, job: PeriodicJob, *, ok: bool) -> None:
        assert self._leases is not None
        # After a failure any replica may try again at its next tick; after a
        # success the job is due again one interval later.
        due_in = job.interval_seconds if ok else 0.0
        try:
            await asyncio.shield(self._leases.release(job.name, due_in_seconds=due_in))
        except Exception as exc:
            # The lease then simply expires.
            log.warning("job %s: could not release its lease: %r", job.name, exc)
