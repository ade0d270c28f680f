"""Coalescing, locked, fenced result generation: the one way results get written.

:meth:`GenerationRunner.ensure_fresh` returns once the exam's results reflect
at least a given ``marks_version`` (by default the one current at the call):

* it loops: read the exam's state from the primary; done if
  ``results_version >= target``; else try to take the exam's lock;
* under the lock it re-reads the state (another holder may just have done the
  work) and only then runs a generation, which reads the marks *after* the
  call started, so it covers the caller's target;
* a caller that cannot take the lock waits for the holder and re-checks; if
  the holder's generation started before the caller's marks, the caller (or
  another waiter) runs the next one. So concurrent callers — in this process
  or any replica — coalesce onto at most one running generation plus one
  follow-up, and every caller returns only when fresh.

Locks: the kit's Redis lease lock, renewed while held; losing it cancels the
generation. If Redis cannot be reached, a Postgres session advisory lock
stands in (so there is still one generation at a time per exam); in neither
case does correctness depend on the lock: the fencing token, checked inside
the write transaction, refuses any writer that is not the newest
(see :mod:`results_service.generation.sql` and ADR 0006).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from redis.exceptions import RedisError
from service_kit.db import Database
from service_kit.lock import DistributedLock, LockLost, LockNotAcquired
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from results_service.generation import sql
from results_service.generation.metrics import (
    ENSURE_FRESH_WAIT,
    GENERATION_DURATION,
    GENERATION_LOCK_MODE,
    GENERATION_ROWS_CHANGED,
    GENERATIONS,
)
from results_service.publication.events import add_updated_events

log = logging.getLogger(__name__)

AfterCompute = Callable[[uuid.UUID, int], Awaitable[None]]
"""Fault-injection point between compute and write: ``hook(exam_id, token)``."""


class ExamNotFound(LookupError):
    """No such exam."""


class GenerationTimedOut(TimeoutError):
    """Results did not become fresh within the caller's time budget."""


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    lease_seconds: float = 30.0
    """Redis lease of the exam lock; renewed every third of it while held."""
    lock_wait_seconds: float = 1.0
    """How long one attempt waits for the lock before re-checking the database."""
    timeout_seconds: float = 60.0
    """How long :meth:`GenerationRunner.ensure_fresh` waits at most by default."""
    poll_seconds: float = 0.1
    """Pause between attempts while another holder generates."""
    work_mem: str | None = "256MB"
    """work_mem of the compute transaction (sorts and hashes of the set-based SQL)."""
    cancel_on_lock_loss: bool = True
    """Cancel the generation when its lease is lost (off only in fault tests, to
    show that the fence alone refuses the late writer)."""


@dataclass(frozen=True, slots=True)
class ExamGenerationState:
    marks_version: int
    results_version: int | None
    last_generation: int
    generation: int
    candidates: int
    complete: int
    incomplete: int
    changed: int
    generated_at: datetime | None

    def fresh_for(self, target: int) -> bool:
        return self.results_version is not None and self.results_version >= target

    @property
    def stale(self) -> bool:
        return not self.fresh_for(self.marks_version)


@dataclass(frozen=True, slots=True)
class GenerationSummary:
    """The answer of ``POST /exams/{id}/results/generate``."""

    exam_id: uuid.UUID
    generation: int
    candidates: int
    complete: int
    incomplete: int
    changed: int
    generated_at: datetime | None
    marks_version: int
    results_version: int | None


_STATE = text(
    """
SELECT e.marks_version, e.results_version, e.last_generation, e.results_generated_at,
       g.generation, g.candidates, g.complete, g.incomplete, g.changed
FROM results.exams e
LEFT JOIN LATERAL (
    SELECT r.generation, r.candidates, r.complete, r.incomplete, r.changed
    FROM results.generation_runs r WHERE r.exam_id = e.id
    ORDER BY r.generation DESC LIMIT 1
) g ON true
WHERE e.id = :exam_id
"""
)


class GenerationRunner:
    """Runs generations of exams' results for one process (see the module doc)."""

    def __init__(
        self,
        db: Database,
        locks: DistributedLock | None,
        *,
        config: RunnerConfig | None = None,
        after_compute: AfterCompute | None = None,
    ) -> None:
        self._db = db
        self._locks = locks
        self.config = config or RunnerConfig()
        self.after_compute = after_compute
        """Fault-injection point between compute and write (tests); None in production."""
        # One attempt per exam in this process; every local caller awaits it.
        self._inflight: dict[uuid.UUID, asyncio.Task[bool]] = {}
        self.runner_id = f"{socket.gethostname()}:{os.getpid()}"

    # -- state -----------------------------------------------------------------

    async def state(self, exam_id: uuid.UUID) -> ExamGenerationState:
        """The exam's freshness bookkeeping, from the primary (never a lagging replica)."""
        async with self._db.read_session(fresh=True) as session:
            row = (await session.execute(_STATE, {"exam_id": exam_id})).one_or_none()
        if row is None:
            raise ExamNotFound(exam_id)
        return ExamGenerationState(
            marks_version=int(row.marks_version),
            results_version=None if row.results_version is None else int(row.results_version),
            last_generation=int(row.last_generation),
            generation=int(row.generation or 0),
            candidates=int(row.candidates or 0),
            complete=int(row.complete or 0),
            incomplete=int(row.incomplete or 0),
            changed=int(row.changed or 0),
            generated_at=row.results_generated_at,
        )

    # -- the coalescing entry point ---------------------------------------------

    async def ensure_fresh(
        self,
        exam_id: uuid.UUID,
        *,
        at_least: int | None = None,
        timeout_seconds: float | None = None,
    ) -> GenerationSummary:
        """Returns once results reflect ``at_least`` (default: marks_version now).

        Raises :class:`ExamNotFound`, or :class:`GenerationTimedOut` after
        ``timeout_seconds`` (default from the config). A generation the
        caller was waiting for keeps running after a timeout: its work is
        not lost, and the next caller finds it done or joins it.
        """
        started = time.monotonic()
        deadline = started + (timeout_seconds or self.config.timeout_seconds)
        state = await self.state(exam_id)
        target = state.marks_version if at_least is None else at_least
        outcome = "timeout"
        try:
            while not state.fresh_for(target):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise GenerationTimedOut(
                        f"results of {exam_id} not fresh for marks_version {target} "
                        f"after {time.monotonic() - started:.1f}s"
                    )
                try:
                    ran = await asyncio.wait_for(asyncio.shield(self._attempt(exam_id)), remaining)
                except TimeoutError:
                    continue
                state = await self.state(exam_id)
                if not ran and not state.fresh_for(target):
                    await asyncio.sleep(min(self.config.poll_seconds, remaining))
            outcome = "fresh"
        finally:
            ENSURE_FRESH_WAIT.labels(outcome).observe(time.monotonic() - started)
        return GenerationSummary(
            exam_id=exam_id,
            generation=state.generation,
            candidates=state.candidates,
            complete=state.complete,
            incomplete=state.incomplete,
            changed=state.changed,
            generated_at=state.generated_at,
            marks_version=state.marks_version,
            results_version=state.results_version,
        )

    def _attempt(self, exam_id: uuid.UUID) -> asyncio.Task[bool]:
        """The in-flight attempt for the exam in this process, started if there is none."""
        task = self._inflight.get(exam_id)
        if task is None:
            task = asyncio.create_task(self._attempt_locked(exam_id), name=f"generate-{exam_id}")
            self._inflight[exam_id] = task
            task.add_done_callback(lambda t: self._attempt_done(exam_id, t))
        return task

    def _attempt_done(self, exam_id: uuid.UUID, task: asyncio.Task[bool]) -> None:
        if self._inflight.get(exam_id) is task:
            del self._inflight[exam_id]
        if not task.cancelled() and task.exception() is not None:
            # Awaited by the callers still waiting; logged here for the ones that left.
            log.warning("generation attempt for %s failed: %r", exam_id, task.exception())

    async def close(self) -> None:
        """Cancels attempts in flight (shutdown); their transactions roll back."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    async def _attempt_locked(self, exam_id: uuid.UUID) -> bool:
        """Takes the exam's lock (briefly waiting) and generates if the exam is stale.

        Returns True when this attempt held the lock (whatever the outcome),
        False when another holder had it.
        """
        if not (await self.state(exam_id)).stale:
            return True
        if self._locks is None:
            return await self._attempt_with_pg_lock(exam_id)
        entered = False
        try:
            async with self._locks.hold(
                str(exam_id),
                self.config.lease_seconds,
                wait_seconds=self.config.lock_wait_seconds,
                cancel_on_loss=self.config.cancel_on_lock_loss,
            ):
                entered = True
                GENERATION_LOCK_MODE.labels("redis", "acquired").inc()
                async with self._db.primary.connect() as conn:
                    await self._generate_if_stale(conn, exam_id)
        except LockNotAcquired:
            GENERATION_LOCK_MODE.labels("redis", "busy").inc()
            return False
        except LockLost:
            GENERATIONS.labels("lock_lost").inc()
            log.warning("generation of %s cancelled: its lock was lost", exam_id)
        except RedisError as exc:
            if entered:
                raise
            # Redis is down: Postgres stands in for mutual exclusion. The fence
            # keeps this correct even if another replica still reaches Redis.
            log.warning("exam lock unavailable (%r); using the Postgres fallback lock", exc)
            return await self._attempt_with_pg_lock(exam_id)
        return True

    async def _attempt_with_pg_lock(self, exam_id: uuid.UUID) -> bool:
        # A session-level advisory lock on a connection of its own: if this
        # process dies, the server drops the connection and the lock with it.
        key = f"results-generation:{exam_id}"
        async with self._db.primary.connect() as lock_conn:
            got = await lock_conn.scalar(
                text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))"), {"key": key}
            )
            await lock_conn.commit()
            if not got:
                GENERATION_LOCK_MODE.labels("postgres_fallback", "busy").inc()
                return False
            GENERATION_LOCK_MODE.labels("postgres_fallback", "acquired").inc()
            try:
                async with self._db.primary.connect() as conn:
                    await self._generate_if_stale(conn, exam_id)
            finally:
                try:
                    await lock_conn.execute(
                        text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))"),
                        {"key": key},
                    )
                    await lock_conn.commit()
                except BaseException:
                    # Never hand a connection that may still hold the lock back
                    # to the pool: invalidating closes it, which releases the lock.
                    await lock_conn.invalidate()
                    raise
        return True

    async def _generate_if_stale(self, conn: AsyncConnection, exam_id: uuid.UUID) -> None:
        # Under the lock: the previous holder may have covered us already. A
        # generation reads every mark committed before it starts, so it covers
        # every caller waiting now.
        if (await self.state(exam_id)).stale:
            await self.generate(conn, exam_id)

    # -- one generation ---------------------------------------------------------

    async def generate(
        self, conn: AsyncConnection, exam_id: uuid.UUID
    ) -> sql.WrittenResults | None:
        """One fenced generation on ``conn``; None if the fence refused it.

        The caller holds the exam's lock; correctness does not depend on it.
        """
        started = time.perf_counter()
        try:
            token = await sql.issue_generation(conn, exam_id)
        except sql.ExamNotFound as exc:
            raise ExamNotFound(exam_id) from exc
        try:
            try:
                computed = await sql.compute_results(conn, exam_id, work_mem=self.config.work_mem)
            except sql.ExamNotFound as exc:
                raise ExamNotFound(exam_id) from exc
            computed_in = time.perf_counter()
            GENERATION_DURATION.labels("compute").observe(computed_in - started)
            if self.after_compute is not None:
                await self.after_compute(exam_id, token)
            written = await self._write(conn, computed, token)
            GENERATION_DURATION.labels("write").observe(time.perf_counter() - computed_in)
        except BaseException as exc:
            if not isinstance(exc, LockLost | asyncio.CancelledError):
                GENERATIONS.labels("failed").inc()
            with contextlib.suppress(Exception):
                await conn.invalidate()
            raise
        await sql.drop_scratch(conn)
        GENERATION_DURATION.labels("total").observe(time.perf_counter() - started)
        if written is None:
            GENERATIONS.labels("fenced").inc()
            log.warning(
                "generation %d of %s refused by the fence: a newer one was issued", token, exam_id
            )
            return None
        GENERATIONS.labels("committed").inc()
        GENERATION_ROWS_CHANGED.inc(written.changed)
        log.info(
            "generation %d of %s committed: marks_version %d, %d candidates, %d changed",
            token,
            exam_id,
            computed.marks_version,
            computed.candidates,
            written.changed,
        )
        return written

    async def _write(
        self, conn: AsyncConnection, computed: sql.ComputedResults, token: int
    ) -> sql.WrittenResults | None:
        collect = computed.exam_status == "published"
        while True:
            trans = await conn.begin()
            try:
                written = await sql.write_results(
                    conn,
                    computed,
                    token,
                    runner=self.runner_id,
                    collect=collect,
                    work_mem=self.config.work_mem,
                )
                if written is None:
                    await trans.rollback()
                    return None
                if written.exam_status == "published" and written.changed:
                    await self._announce(conn, computed.exam_id, written, token)
                await trans.commit()
                return written
            except sql.PublishedMeanwhile:
                await trans.rollback()
                collect = True
            except BaseException:
                if trans.is_active:
                    with contextlib.suppress(Exception):
                        await trans.rollback()
                raise

    async def _announce(
        self, conn: AsyncConnection, exam_id: uuid.UUID, written: sql.WrittenResults, token: int
    ) -> None:
        """results.updated for exactly the students in ``gen_changed``, in this transaction."""
        session = AsyncSession(bind=conn)
        try:
            await add_updated_events(
                session,
                exam_id=exam_id,
                exam_code=written.exam_code,
                exam_name=written.exam_name,
                generation=token,
            )
        finally:
            await session.close()
