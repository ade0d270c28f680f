"""Composition root: what the results service is made of. Wiring only, no logic.

The kit's service host (:mod:`service_kit.host`) opens the database and Redis,
calls :func:`wire`, and starts and stops every part in one order; consumers,
periodic jobs and the outbox relay run only when ``RUN_WORKERS`` is on (or in
the ``worker`` process).
"""

from __future__ import annotations

from functools import partial

import httpx
from fastapi import FastAPI
from service_kit.host import Kit, Needs, Parts, ServiceHost
from service_kit.lock import DistributedLock

from results_service import __version__
from results_service.api import exams, marks, publication, results
from results_service.cache import ResultsCache
from results_service.clients.auth import AuthStudentLookup, StudentLookup
from results_service.generation.autoregen import AutoRegenerator, DebounceBoard, register_autoregen
from results_service.generation.runner import GenerationRunner, RunnerConfig
from results_service.jobs.housekeeping import housekeeping_job
from results_service.messaging.mark_chunks import register_mark_chunks
from results_service.messaging.user_events import register_user_events
from results_service.publication.scheduler import PublicationScheduler
from results_service.read_your_writes import RecentWriters
from results_service.settings import SCHEMA, ResultsSettings


def wire(kit: Kit[ResultsSettings]) -> Parts[ResultsSettings]:
    s, db, redis = kit.settings, kit.db, kit.redis
    # Carries results' service token: auth's internal endpoints refuse calls without one.
    http = httpx.AsyncClient(
        timeout=s.auth_lookup_timeout_seconds, auth=kit.service_tokens.auth("auth")
    )
    lookup = AuthStudentLookup(http, s.auth_url, batch_size=s.auth_lookup_batch_size)
    writers = RecentWriters(
        redis, key_prefix=f"{s.redis_key_prefix}results:", ttl_seconds=s.read_your_writes_seconds
    )
    # One runner per process: HTTP callers and background work coalesce onto one attempt.
    runner = GenerationRunner(
        db,
        DistributedLock(redis, key_prefix=f"{s.redis_key_prefix}results:", name="exam"),
        config=RunnerConfig(
            lease_seconds=s.generation_lock_lease_seconds,
            lock_wait_seconds=s.generation_lock_wait_seconds,
            timeout_seconds=s.generation_wait_seconds,
            work_mem=s.generation_work_mem,
        ),
    )
    cache = ResultsCache(
        redis, key_prefix=s.redis_key_prefix, ttl_seconds=s.results_cache_ttl_seconds
    )
    regenerator = AutoRegenerator(
        db,
        runner,
        DebounceBoard(
            redis, key_prefix=s.redis_key_prefix, delay_seconds=s.regeneration_debounce_seconds
        ),
        sweep_seconds=s.regeneration_sweep_seconds,
        timeout_seconds=s.regeneration_timeout_seconds,
    )
    scheduler = PublicationScheduler(
        db,
        runner,
        poll_seconds=s.publication_poll_seconds,
        regenerate_timeout_seconds=s.regeneration_timeout_seconds,
    )
    return Parts(
        provides={
            StudentLookup: lookup,
            RecentWriters: writers,
            GenerationRunner: runner,
            ResultsCache: cache,
            # Not used by routes; provided so tests and tools can reach them.
            AutoRegenerator: regenerator,
            PublicationScheduler: scheduler,
        },
        consumers=[
            partial(register_user_events, db=db),
            partial(register_mark_chunks, db=db, lookup=lookup, writers=writers),
            partial(register_autoregen, db=db, regenerator=regenerator),
        ],
        jobs=[housekeeping_job(db, s), scheduler.periodic_job(), *regenerator.periodic_jobs()],
        background=[regenerator, scheduler],
        on_stop=[http.aclose, runner.close],
    )


SERVICE = ServiceHost(
    title="results",
    version=__version__,
    settings_type=ResultsSettings,
    wire=wire,
    routers=[
        exams.router,
        marks.router,
        results.router,
        publication.router,
        results.internal_router,
    ],
    needs=Needs(schema=SCHEMA, outbox=True),
)


def create_app(settings: ResultsSettings | None = None) -> FastAPI:
    return SERVICE.api_app(settings)


def create_worker_app(settings: ResultsSettings | None = None) -> FastAPI:
    return SERVICE.worker_app(settings)
