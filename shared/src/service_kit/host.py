"""The service host: a service declares its parts, the kit runs their lifecycle.

A service's composition root (``main.py``) is a :class:`ServiceHost` holding
its routers and a ``wire`` function. ``wire`` receives the resources the kit
opened (:class:`Kit`: settings, database, Redis) and returns the service's
:class:`Parts`: the objects routes may ask for, the consumers, periodic jobs,
other background services, extra readiness checks, and start/stop hooks.
Nothing else starts or stops anything, so every service does it in one order.

Start (in the app's lifespan):

1. open the database and Redis pools and the service credential (the token
   verifier was built with the app);
2. ``wire`` builds the service's components; ``on_start`` hooks run;
   an API process loads the access-token revocations and keeps them current
   (:mod:`service_kit.revocations`) and starts the ``serving`` services;
3. with workers on (``RUN_WORKERS``): the outbox relay, periodic jobs and
   background services start, and the consumers start last, so a message is
   only taken once everything its handler uses is up.

Stop (SIGTERM; uvicorn has already drained HTTP requests), in DESIGN.md's order:

1. stop taking messages; in-flight handlers finish (their messages are
   acknowledged), prefetched ones go back to the queue when the channel closes;
2. stop background services and periodic jobs (a run in progress is cancelled);
3. the relay publishes its current batch and stops;
4. ``on_stop`` hooks close the service's own clients (reverse order);
5. Redis and database pools close.

Each step runs even when an earlier one failed (an exit stack), so a failed
start never leaks a pool or a task.

One image, two process kinds: :meth:`ServiceHost.api_app` serves the routers
(plus the workers when ``RUN_WORKERS`` is on); :meth:`ServiceHost.worker_app`
serves only ``/healthz``, ``/readyz`` and ``/metrics`` and always runs the
workers, for a worker Deployment that scales apart from the API.

Routes get components through FastAPI dependencies: ``Annotated[ResultsCache,
Provided(ResultsCache)]`` (see :func:`Provided`); the host fills the registry
before the first request, so there is no lazily built global.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from typing import Any, Generic, Protocol, TypeVar

import httpx
from fastapi import APIRouter, Depends, FastAPI
from redis.asyncio import Redis
from starlette.requests import HTTPConnection

from service_kit.app import create_app
from service_kit.db import Database
from service_kit.health import Readiness
from service_kit.jobs import JobLeases, PeriodicJob, PeriodicJobs
from service_kit.messaging.broker import EventBroker
from service_kit.messaging.relay import OutboxRelay
from service_kit.redis import create_redis, ping_redis
from service_kit.revocations import RevocationList, RevocationSource, http_revocation_source
from service_kit.security import TokenVerifier, internal_audience, token_verifier_from_settings
from service_kit.service_credentials import ServiceTokens
from service_kit.settings import KitSettings
from service_kit.termination import on_termination

log = logging.getLogger(__name__)

S = TypeVar("S", bound=KitSettings)
T = TypeVar("T")

ConsumerRegistration = Callable[[EventBroker], object]
"""Registers one queue and its handlers on the broker (called only when workers run)."""
Hook = Callable[[], Awaitable[object] | object]


class BackgroundService(Protocol):
    """A long-running part of a worker that is not a periodic job (e.g. a task pool)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Check:
    """A readiness check; a non-critical one is reported but never makes the pod unready."""

    name: str
    check: Callable[[], Awaitable[object]]
    critical: bool = True


@dataclass(frozen=True, slots=True)
class Parts(Generic[S]):
    """What a service is made of, as its ``wire`` function returns it."""

    provides: Mapping[type[Any], object] = field(default_factory=dict)
    """Objects routes may ask for by type (``Provided(kind)``)."""
    consumers: Sequence[ConsumerRegistration] = ()
    jobs: Sequence[PeriodicJob] = ()
    background: Sequence[BackgroundService] = ()
    serving: Sequence[BackgroundService] = ()
    """Started only in a process that serves the API, whether or not it runs workers
    (the notifier's stream hub feeds the live streams that process holds)."""
    on_termination: Sequence[Callable[[], None]] = ()
    """Run in an API process as soon as SIGTERM or SIGINT arrives, before uvicorn waits
    for open connections: what ends long-lived responses (live streams), which
    would otherwise hold a stopping replica for the whole graceful timeout."""
    readiness: Sequence[Check] = ()
    on_start: Sequence[Hook] = ()
    """Run once the components exist, before workers start (e.g. bootstrap an admin)."""
    on_stop: Sequence[Hook] = ()
    """Run after the workers stopped, before the pools close, in reverse order."""
    revocations: RevocationSource | None = None
    """Where this service reads access-token revocations itself (auth: its own table);
    default: auth's ``/internal/revocations`` with this service's credential."""


@dataclass(frozen=True, slots=True)
class Kit(Generic[S]):
    """The resources the host opened for a service's ``wire`` function."""

    settings: S
    db: Database
    redis: Redis
    workers: bool
    """Whether this process runs consumers, jobs and the relay."""
    service_tokens: ServiceTokens
    """This service's credential: ``service_tokens.auth("auth")`` for an ``httpx`` client
    that calls another service's internal endpoints."""


@dataclass(frozen=True, slots=True)
class Needs:
    """What a service keeps in its Postgres schema, and how much Redis matters to it."""

    schema: str | None = None
    """The service's own schema: its inbox, outbox and periodic job leases live there."""
    outbox: bool = False
    """The service publishes events through the outbox of ``schema``: run a relay."""
    outbox_retention: timedelta = timedelta(days=7)
    """How long sent outbox rows are kept (short when they hold secrets)."""
    redis_critical: bool = False
    """Whether Redis being down makes the pod unready (most services only degrade)."""

    def __post_init__(self) -> None:
        if self.outbox and self.schema is None:
            raise ValueError("a service with an outbox must name its schema")


Wire = Callable[[Kit[S]], Parts[S]]


@dataclass(frozen=True, slots=True)
class ServiceHost(Generic[S]):
    """A service's declaration: what it is called, its routers, how it is wired."""

    title: str
    version: str
    settings_type: type[S]
    wire: Wire[S]
    routers: Sequence[APIRouter] = ()
    needs: Needs = Needs()
    token_verifier: Callable[[S], TokenVerifier] | None = None
    """Builds the verifier of access tokens; default: the JWKS from settings."""

    def api_app(self, settings: S | None = None) -> FastAPI:
        """The HTTP API, with the workers too when ``RUN_WORKERS`` is on."""
        settings = settings or self.settings_type()
        return self._app(settings, routers=self.routers, workers=settings.run_workers)

    def worker_app(self, settings: S | None = None) -> FastAPI:
        """Workers only; HTTP serves just health, readiness and metrics."""
        settings = settings or self.settings_type()
        return self._app(settings, routers=(), workers=True)

    def _app(self, settings: S, *, routers: Sequence[APIRouter], workers: bool) -> FastAPI:
        app: FastAPI

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            async with AsyncExitStack() as stack:
                await self._start(app, settings, stack, workers=workers, api=bool(routers))
                yield

        app = create_app(
            settings, title=self.title, version=self.version, routers=routers, lifespan=lifespan
        )
        app.state.provided = {}
        app.state.internal_audience = internal_audience(settings.service_name)
        # Built now, not in the lifespan: tests replace it before startup.
        app.state.token_verifier = (
            self.token_verifier(settings)
            if self.token_verifier is not None
            else token_verifier_from_settings(
                settings.jwks_url,
                settings.jwt_issuer,
                settings.jwt_audience,
                settings.jwks_cache_seconds,
            )
        )
        return app

    async def _start(
        self, app: FastAPI, settings: S, stack: AsyncExitStack, *, workers: bool, api: bool
    ) -> None:
        db = Database(settings)
        stack.push_async_callback(db.dispose)
        redis = create_redis(settings)
        stack.push_async_callback(redis.aclose)
        tokens = ServiceTokens(
            settings.auth_url, settings.client_id, settings.service_client_secret.get_secret_value()
        )
        stack.push_async_callback(tokens.aclose)
        kit = Kit(settings=settings, db=db, redis=redis, workers=workers, service_tokens=tokens)

        parts = self.wire(kit)
        for hook in parts.on_stop:
            stack.push_async_callback(_call, hook)
        provided: dict[type[Any], object] = {
            KitSettings: settings,
            type(settings): settings,
            Database: db,
            Redis: redis,
        }
        for kind, component in parts.provides.items():
            _check_provided(kind, component)
            provided[kind] = component
        app.state.provided = provided

        readiness: Readiness = app.state.readiness
        readiness.add("database", db.ping)
        readiness.add("redis", lambda: ping_redis(redis), critical=self.needs.redis_critical)
        for check in parts.readiness:
            readiness.add(check.name, check.check, critical=check.critical)

        for hook in parts.on_start:
            await _call(hook)
        if api:
            await self._keep_revocations(app.state.token_verifier, kit, parts, stack, readiness)
            for service in parts.serving:
                await service.start()
                stack.push_async_callback(_stop_logged, service)
            for step in parts.on_termination:
                stack.enter_context(on_termination(step))
        if workers:
            await self._start_workers(kit, parts, stack, readiness)

    async def _keep_revocations(
        self,
        verifier: TokenVerifier,
        kit: Kit[S],
        parts: Parts[S],
        stack: AsyncExitStack,
        readiness: Readiness,
    ) -> None:
        """Loads the revocations before the first request and keeps them current."""
        settings = kit.settings
        if verifier.revocations is None:
            source = parts.revocations
            if source is None:
                feed_client = httpx.AsyncClient(auth=kit.service_tokens.auth("auth"))
                stack.push_async_callback(feed_client.aclose)
                source = http_revocation_source(feed_client, settings.auth_url)
            verifier.revocations = RevocationList(
                source, max_staleness_seconds=settings.revocation_max_staleness_seconds
            )
        await verifier.revocations.load()
        jobs = PeriodicJobs([verifier.revocations.sync_job(settings.revocation_poll_seconds)])
        jobs.start()
        stack.push_async_callback(jobs.stop)
        readiness.add("revocations", verifier.revocations.ready)

    async def _start_workers(
        self, kit: Kit[S], parts: Parts[S], stack: AsyncExitStack, readiness: Readiness
    ) -> None:
        settings, needs = kit.settings, self.needs
        jobs = list(parts.jobs)
        if needs.outbox:
            assert needs.schema is not None
            relay = OutboxRelay(
                kit.db, settings, schema=needs.schema, retention=needs.outbox_retention
            )
            relay.start()
            stack.push_async_callback(relay.stop)
            jobs.append(relay.purge_job())
        leases = JobLeases(kit.db, needs.schema) if needs.schema is not None else None
        periodic = PeriodicJobs(jobs, leases=leases)
        periodic.start()
        stack.push_async_callback(periodic.stop)
        for service in parts.background:
            await service.start()
            stack.push_async_callback(_stop_logged, service)
        if parts.consumers:
            events = EventBroker(settings, prefetch=settings.consumer_prefetch)
            for register in parts.consumers:
                register(events)
            await events.start()
            # Pushed last, so popped first: consumers stop before what they use.
            stack.push_async_callback(events.stop)
            # Only a process that consumes needs the broker to be ready.
            readiness.add("rabbitmq", events.ping)


async def _call(hook: Hook) -> None:
    result = hook()
    if inspect.isawaitable(result):
        await result


async def _stop_logged(service: BackgroundService) -> None:
    try:
        await service.stop()
    except Exception:
        # The next steps (relay flush, pools) must still run.
        log.exception("background service %r did not stop cleanly", service)


def _check_provided(kind: type[Any], component: object) -> None:
    is_protocol = getattr(kind, "_is_protocol", False)
    if not is_protocol and not isinstance(component, kind):
        raise TypeError(f"provided {kind.__name__} is a {type(component).__name__}")


@cache
def _provider(kind: type[Any]) -> Callable[[HTTPConnection], Awaitable[Any]]:
    # async: FastAPI runs a plain ``def`` dependency in its threadpool (a thread
    # handoff per request). One function per kind, so FastAPI's per-request
    # dependency cache sees the same dependency everywhere.
    async def dependency(connection: HTTPConnection) -> Any:
        try:
            return connection.app.state.provided[kind]
        except KeyError:
            raise RuntimeError(
                f"{kind.__name__} is not provided by this service's wire() "
                "(or the app was not started)"
            ) from None

    dependency.__name__ = f"provided_{kind.__name__}"
    return dependency


def Provided(kind: type[T]) -> Any:  # named like Depends, which it stands for
    """``Depends`` on the component the host registered for ``kind``.

    ``Cache = Annotated[ResultsCache, Provided(ResultsCache)]``, then a route
    takes ``cache: Cache``.
    """
    return Depends(_provider(kind))  # type: ignore[arg-type]


def component(app: FastAPI, kind: type[T]) -> T:
    """The component a started app provides for ``kind`` (for tests and tools, not routes)."""
    found = app.state.provided.get(kind)
    if found is None:
        raise LookupError(f"{kind.__name__} is not provided (is the app started?)")
    return found  # type: ignore[no-any-return]
