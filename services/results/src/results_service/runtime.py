"""The process's resources and their lifecycle (the lifespan of the app).

:func:`service_lifespan` opens, in order: the database, Redis, the HTTP client
for auth, token verification; then, when ``RUN_WORKERS`` is on, the event
consumers, the outbox relay and the background services; and closes them in
reverse order on shutdown (SIGTERM): consumers stop taking messages and
finish in-flight ones first, background services stop, the relay publishes
its current batch, then connections close.

Extension points (wired in :mod:`results_service.main`):

* a :data:`ConsumerRegistration` registers a queue and its handlers on the
  :class:`EventBroker` before it starts;
* a :data:`BackgroundFactory` builds a :class:`BackgroundService` (a loop
  with ``start``/``stop``, e.g. a scheduler) from the :class:`Runtime`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis
from service_kit.db import Database
from service_kit.messaging.broker import EventBroker
from service_kit.messaging.relay import OutboxRelay
from service_kit.redis import create_redis
from service_kit.security import token_verifier_from_settings

from results_service.clients.auth import AuthStudentLookup, StudentLookup
from results_service.read_your_writes import RecentWriters
from results_service.settings import SCHEMA, ResultsSettings

if TYPE_CHECKING:
    from results_service.generation.wiring import ResultsJobs

log = logging.getLogger(__name__)


class BackgroundService(Protocol):
    """A long-running part of a worker (scheduler, debouncer...)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Runtime:
    """Everything a request or a message handler may need, one per process."""

    settings: ResultsSettings
    db: Database
    redis: Redis
    http: httpx.AsyncClient
    student_lookup: StudentLookup
    recent_writers: RecentWriters
    events: EventBroker | None = None
    relay: OutboxRelay | None = None
    background: list[BackgroundService] = field(default_factory=list)
    results_jobs: ResultsJobs | None = None
    """Generation runner, result cache, auto-regeneration and publication scheduler;
    built on first use by :func:`results_service.generation.wiring.results_jobs`."""


ConsumerRegistration = Callable[[EventBroker, Runtime], object]
BackgroundFactory = Callable[[Runtime], BackgroundService]


def build_runtime(settings: ResultsSettings) -> Runtime:
    db = Database(settings)
    redis = create_redis(settings)
    http = httpx.AsyncClient(timeout=settings.auth_lookup_timeout_seconds)
    return Runtime(
        settings=settings,
        db=db,
        redis=redis,
        http=http,
        student_lookup=AuthStudentLookup(
            http, settings.auth_url, batch_size=settings.auth_lookup_batch_size
        ),
        recent_writers=RecentWriters(
            redis,
            key_prefix=f"{settings.redis_key_prefix}results:",
            ttl_seconds=settings.read_your_writes_seconds,
        ),
    )


async def _start_workers(
    runtime: Runtime,
    consumers: Sequence[ConsumerRegistration],
    background: Sequence[BackgroundFactory],
) -> None:
    settings = runtime.settings
    runtime.relay = OutboxRelay(runtime.db, settings, schema=SCHEMA)
    runtime.relay.start()
    events = EventBroker(settings, prefetch=settings.consumer_prefetch)
    for register in consumers:
        register(events, runtime)
    await events.start()
    runtime.events = events
    for factory in background:
        service = factory(runtime)
        await service.start()
        runtime.background.append(service)


async def _stop_workers(runtime: Runtime) -> None:
    if runtime.events is not None:
        await runtime.events.stop()
    for service in reversed(runtime.background):
        try:
            await service.stop()
        except Exception:
            log.exception("background service %r did not stop cleanly", service)
    if runtime.relay is not None:
        await runtime.relay.stop()


@contextlib.asynccontextmanager
async def service_lifespan(
    app: FastAPI,
    settings: ResultsSettings,
    consumers: Sequence[ConsumerRegistration],
    background: Sequence[BackgroundFactory],
) -> AsyncIterator[None]:
    runtime = build_runtime(settings)
    app.state.runtime = runtime
    # Tests install a verifier with their own key before startup; keep it.
    if getattr(app.state, "token_verifier", None) is None:
        app.state.token_verifier = token_verifier_from_settings(
            settings.jwks_url,
            settings.jwt_issuer,
            settings.jwt_audience,
            settings.jwks_cache_seconds,
        )
    app.state.readiness.add("database", runtime.db.ping)
    try:
        if settings.run_workers:
            await _start_workers(runtime, consumers, background)
            events = runtime.events
            assert events is not None
            app.state.readiness.add("rabbitmq", events.ping)
        yield
    finally:
        try:
            await _stop_workers(runtime)
        finally:
            await runtime.http.aclose()
            await runtime.redis.aclose()
            await runtime.db.dispose()
