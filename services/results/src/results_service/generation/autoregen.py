"""Automatic regeneration: stale exams regenerate by themselves, debounced.

Two triggers feed one debounce board, and one loop drains it:

* ``marks.changed`` (consumed from RabbitMQ; any replica gets any message)
  pushes the exam's due time to *now + debounce* — so an import of 200 chunks
  regenerates once, ``debounce`` seconds after its last chunk;
* a periodic sweep of stale exams in PostgreSQL (``results_version IS NULL OR
  < marks_version``) does the same, so nothing is lost if a message is.

The board is a Redis sorted set (exam id -> due time), shared by every
replica; due times come from Redis's own clock (``TIME`` in the scripts), so
replica clocks never matter, and popping a due exam is atomic, so one replica
takes it. Every replica drains it and calls the coalescing
:class:`GenerationRunner`, whose lock lets one generation run at a time. If
Redis is unreachable, each replica falls back to a board in its own memory:
debouncing per replica, still one generation at a time through the runner's
Postgres fallback lock, and the sweep still catches every stale exam.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError
from service_kit.db import Database
from service_kit.jobs import PeriodicJob
from service_kit.messaging.broker import EventBroker
from service_kit.messaging.consumer import EventConsumer, ReceivedEvent
from service_kit.messaging.topology import QueueSpec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from results_service.contracts import MARKS_CHANGED_TYPE, MarksChangedV1
from results_service.generation.metrics import AUTOREGEN
from results_service.generation.runner import ExamNotFound, GenerationRunner
from results_service.settings import SCHEMA

log = logging.getLogger(__name__)

AUTOREGEN_QUEUE = QueueSpec("results.autoregen", (MARKS_CHANGED_TYPE,))

# KEYS[1] = board, ARGV[1] = exam id, ARGV[2] = delay ms. The last touch wins.
_TOUCH = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return now
"""
# KEYS[1] = board, ARGV[1] = max count. Pops due members atomically.
_POP_DUE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
return due
"""

_REDIS_ERRORS = (RedisError, OSError, TimeoutError)


class DebounceBoard:
    """Exam ids with a due time; shared in Redis, or per process while Redis is down."""

    def __init__(self, redis: Redis, *, key_prefix: str, delay_seconds: float) -> None:
        self._key = f"{key_prefix}results:regen-due"
        self._delay_ms = max(0, round(delay_seconds * 1000))
        self._touch = redis.register_script(_TOUCH)
        self._pop = redis.register_script(_POP_DUE)
        self._local: dict[uuid.UUID, float] = {}

    async def touch(self, exam_id: uuid.UUID, *, delay_seconds: float | None = None) -> None:
        delay_ms = self._delay_ms if delay_seconds is None else round(delay_seconds * 1000)
        try:
            await self._touch(keys=[self._key], args=[str(exam_id), delay_ms])
        except _REDIS_ERRORS as exc:
            log.warning("debounce board unavailable (%r): debouncing %s locally", exc, exam_id)
            self._local[exam_id] = time.monotonic() + delay_ms / 1000

    async def pop_due(self, limit: int = 20) -> list[uuid.UUID]:
        due: list[uuid.UUID] = []
        now = time.monotonic()
        for exam_id, at in list(self._local.items()):
            if at <= now and len(due) < limit:
                due.append(exam_id)
                del self._local[exam_id]
        try:
            raw = await self._pop(keys=[self._key], args=[limit])
        except _REDIS_ERRORS:
            return due
        for member in raw or []:
            value = member.decode() if isinstance(member, bytes) else str(member)
            with contextlib.suppress(ValueError):
                due.append(uuid.UUID(value))
        return due


_STALE = text(
    "SELECT id FROM results.exams "
    "WHERE results_version IS NULL OR results_version < marks_version "
    "ORDER BY updated_at LIMIT :limit"
)


class AutoRegenerator:
    """Drains the board into the runner and sweeps for stale exams (two periodic jobs);
    a background service whose stop cancels the regenerations in flight."""

    def __init__(
        self,
        db: Database,
        runner: GenerationRunner,
        board: DebounceBoard,
        *,
        tick_seconds: float = 0.25,
        sweep_seconds: float = 30.0,
        concurrency: int = 4,
        timeout_seconds: float = 300.0,
        retry_seconds: float = 10.0,
    ) -> None:
        self._db = db
        self._runner = runner
        self.board = board
        self._tick = tick_seconds
        self._sweep_every = sweep_seconds
        self._slots = asyncio.Semaphore(concurrency)
        self._timeout = timeout_seconds
        self._retry = retry_seconds
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[uuid.UUID] = set()

    def periodic_jobs(self) -> list[PeriodicJob]:
        """Draining the board every tick, and the sweep (jittered, so replicas started
        together by a rollout do not sweep in lockstep)."""
        return [
            PeriodicJob(
                "regenerate-due-exams",
                self.drain_once,
                interval_seconds=self._tick,
                jitter=0.0,
                first_run_after=0.0,
            ),
            PeriodicJob(
                "sweep-stale-exams",
                self.sweep,
                interval_seconds=self._sweep_every,
                jitter=0.2,
                first_run_after=0.75,
            ),
        ]

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        """Cancels the regenerations in flight (their exams stay stale and are swept)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def on_marks_changed(self, data: MarksChangedV1) -> None:
        await self.board.touch(data.exam_id)
        AUTOREGEN.labels("event", "debounced").inc()

    async def sweep(self) -> int:
        """Puts every stale exam on the board (due after the debounce); returns how many."""
        async with self._db.read_session(fresh=True) as session:
            ids = list((await session.scalars(_STALE, {"limit": 1000})).all())
        for exam_id in ids:
            await self.board.touch(exam_id)
        if ids:
            AUTOREGEN.labels("sweep", "debounced").inc(len(ids))
        return len(ids)

    async def drain_once(self) -> list[uuid.UUID]:
        """Starts a regeneration for every due exam not already running here."""
        started = []
        for exam_id in await self.board.pop_due():
            if exam_id in self._running:
                # Still generating here; look again after the debounce.
                await self.board.touch(exam_id)
                continue
            self._running.add(exam_id)
            task = asyncio.create_task(self._regenerate(exam_id), name=f"autoregen-{exam_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started.append(exam_id)
        return started

    async def _regenerate(self, exam_id: uuid.UUID) -> None:
        try:
            async with self._slots:
                await self._runner.ensure_fresh(exam_id, timeout_seconds=self._timeout)
            AUTOREGEN.labels("board", "fresh").inc()
        except ExamNotFound:
            AUTOREGEN.labels("board", "gone").inc()
        except Exception as exc:
            AUTOREGEN.labels("board", "failed").inc()
            log.warning("automatic regeneration of %s failed (%r); retrying", exam_id, exc)
            await self.board.touch(exam_id, delay_seconds=self._retry)
        finally:
            self._running.discard(exam_id)


def register_autoregen(
    events: EventBroker, *, db: Database, regenerator: AutoRegenerator
) -> EventConsumer:
    """Consumes ``marks.changed`` into the debounce board (no generation in the handler)."""
    consumer = events.consumer(AUTOREGEN_QUEUE, db=db, schema=SCHEMA)

    async def on_marks_changed(event: ReceivedEvent[MarksChangedV1], _: AsyncSession) -> None:
        await regenerator.on_marks_changed(event.data)

    consumer.handler(MarksChangedV1)(on_marks_changed)
    return consumer
