"""Fixtures of the results tests (exams, marks, students, import chunks).

Each test gets its own database (``results_test_<uuid>``, cloned from a
template migrated once per session with the service's real migrations, and
dropped even when the test fails), its own Redis key prefix, queue prefix and
events exchange. The app runs in-process (httpx ASGITransport + the real
lifespan); tokens are signed by a test Ed25519 key whose JWKS the verifier
gets from a static fetcher; auth's internal student lookup is a tiny real
HTTP server on a free port.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from redis.asyncio import Redis
from results_service.main import create_app
from results_service.settings import ResultsSettings
from results_support import (
    AuthStub,
    Caller,
    JwtKeys,
    caller,
    drop_broker_objects,
    start_auth_stub,
    static_verifier,
)
from service_kit.db import Database
from service_kit.migrations import upgrade_to_head
from service_kit.redis import create_redis
from service_kit.testing import create_database, drop_database, scratch_redis, unique_database_name

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"


@pytest.fixture(scope="session")
def template_database() -> Iterator[str]:
    name = unique_database_name("results_tmpl")

    async def create() -> None:
        await upgrade_to_head(ALEMBIC_INI, await create_database(name))

    asyncio.run(create())
    try:
        yield name
    finally:
        asyncio.run(drop_database(name))


@pytest.fixture(scope="session")
def database_dropper() -> Iterator[ThreadPoolExecutor]:
    """Drops test databases off the test's critical path; all are gone before the session ends."""
    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="drop-db")
    try:
        yield executor
    finally:
        executor.shutdown(wait=True)


@pytest.fixture
async def database_url(
    template_database: str, database_dropper: ThreadPoolExecutor
) -> AsyncIterator[str]:
    name = unique_database_name("results_test")
    url = await create_database(name, template=template_database)
    try:
        yield url
    finally:
        database_dropper.submit(asyncio.run, drop_database(name))


@pytest.fixture(scope="session")
def jwt_keys() -> JwtKeys:
    return JwtKeys.generate()


@pytest.fixture(scope="session")
def auth_stub() -> Iterator[AuthStub]:
    stub, stop = start_auth_stub()
    try:
        yield stub
    finally:
        stop()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def settings(database_url: str, unique: str, auth_stub: AuthStub) -> ResultsSettings:
    return ResultsSettings(
        environment="test",
        log_json=False,
        database_url=database_url,
        db_pool_size=5,
        redis_key_prefix=f"test-{unique}:",
        queue_prefix=f"test-{unique}.",
        events_exchange=f"test-{unique}.events",
        queue_expires_seconds=600,
        auth_url=auth_stub.url,
        run_workers=False,
    )


@pytest.fixture
async def db(settings: ResultsSettings) -> AsyncIterator[Database]:
    database = Database(settings)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def redis(settings: ResultsSettings) -> AsyncIterator[Redis]:
    async with scratch_redis(create_redis(settings), settings.redis_key_prefix) as client:
        yield client


async def _running_app(
    settings: ResultsSettings, jwt_keys: JwtKeys
) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    app = create_app(settings)
    app.state.token_verifier = static_verifier(jwt_keys, settings)
    async with (
        LifespanManager(app, startup_timeout=30, shutdown_timeout=30),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://results.test") as client,
    ):
        yield app, client


@pytest.fixture
async def client(
    settings: ResultsSettings, jwt_keys: JwtKeys, redis: Redis
) -> AsyncIterator[AsyncClient]:
    """The API in-process, without consumers (``RUN_WORKERS`` off)."""
    async for _, http in _running_app(settings, jwt_keys):
        yield http


@pytest.fixture
async def worker_settings(settings: ResultsSettings) -> AsyncIterator[ResultsSettings]:
    """Settings with the consumers and the outbox relay on; broker objects removed after."""
    with_workers = settings.model_copy(update={"run_workers": True})
    try:
        yield with_workers
    finally:
        await drop_broker_objects(with_workers)


@pytest.fixture
async def worker_app(
    worker_settings: ResultsSettings, jwt_keys: JwtKeys, redis: Redis
) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """The app with its consumers and relay running against real RabbitMQ."""
    async for running in _running_app(worker_settings, jwt_keys):
        yield running


@pytest.fixture
def admin(jwt_keys: JwtKeys, settings: ResultsSettings) -> Caller:
    return caller(jwt_keys, settings, "admin")


@pytest.fixture
def examiner(jwt_keys: JwtKeys, settings: ResultsSettings) -> Caller:
    return caller(jwt_keys, settings, "examiner")


@pytest.fixture
def student(jwt_keys: JwtKeys, settings: ResultsSettings) -> Caller:
    return caller(jwt_keys, settings, "student")
