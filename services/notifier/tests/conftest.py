"""Fixtures of the notifier tests.

Each test gets its own database (``notifier_test_<uuid>``, cloned from a
template migrated once per session with the notifier's real migrations, and
dropped even when the test fails), its own Redis key prefix, queue prefix and
events exchange. The app runs in-process (httpx ASGITransport + the real
lifespan) with ``RUN_WORKERS`` off unless a test asks for ``worker_settings``;
tokens are signed by a test Ed25519 key whose JWKS the verifier gets from a
static fetcher; auth's internal endpoints are a tiny real HTTP server.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from notifier_service.main import create_app
from notifier_service.settings import NotifierSettings
from notifier_support import AuthStub, Caller, JwtKeys, caller, start_auth_stub, static_verifier
from redis.asyncio import Redis
from service_kit.db import Database
from service_kit.migrations import upgrade_to_head
from service_kit.redis import create_redis
from service_kit.testing import create_database, drop_database, scratch_redis, unique_database_name

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"


@pytest.fixture(scope="session")
def template_database() -> Iterator[str]:
    name = unique_database_name("notifier_tmpl")

    async def create() -> None:
        await upgrade_to_head(ALEMBIC_INI, await create_database(name))

    asyncio.run(create())
    try:
        yield name
    finally:
        asyncio.run(drop_database(name))


class DatabasePool:
    """Test databases copied from the template ahead of time, in threads, so that a test
    does not wait for its copy (about a quarter of a second each); dropped in threads too."""

    def __init__(self, template: str, ahead: int = 3) -> None:
        self._template = template
        self._executor = ThreadPoolExecutor(max_workers=6, thread_name_prefix="test-db")
        self._ready: deque[Future[tuple[str, str]]] = deque()
        for _ in range(ahead):
            self._ready.append(self._executor.submit(self._create))

    def _create(self) -> tuple[str, str]:
        name = unique_database_name("notifier_test")
        return name, asyncio.run(create_database(name, template=self._template))

    def take(self) -> tuple[str, str]:
        future = self._ready.popleft()
        self._ready.append(self._executor.submit(self._create))
        return future.result()

    def drop(self, name: str) -> None:
        self._executor.submit(asyncio.run, drop_database(name))

    def close(self) -> None:
        while self._ready:
            try:
                name, _ = self._ready.popleft().result()
            except Exception:
                continue
            self.drop(name)
        self._executor.shutdown(wait=True)


@pytest.fixture(scope="session")
def database_pool(template_database: str) -> Iterator[DatabasePool]:
    pool = DatabasePool(template_database)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def database_url(database_pool: DatabasePool) -> Iterator[str]:
    name, url = database_pool.take()
    try:
        yield url
    finally:
        database_pool.drop(name)


@pytest.fixture(scope="session")
def jwt_keys() -> JwtKeys:
    return JwtKeys.generate()


@pytest.fixture(scope="session")
def auth_stub_server() -> Iterator[AuthStub]:
    stub, stop = start_auth_stub()
    try:
        yield stub
    finally:
        stop()


@pytest.fixture
def auth_stub(auth_stub_server: AuthStub) -> Iterator[AuthStub]:
    """The session's stub, reset to reachable for each test (users stay: ids are unique)."""
    auth_stub_server.failing = False
    try:
        yield auth_stub_server
    finally:
        auth_stub_server.failing = False


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def settings(database_url: str, unique: str, auth_stub: AuthStub) -> NotifierSettings:
    return NotifierSettings(
        environment="test",
        log_json=False,
        database_url=database_url,
        db_pool_size=10,
        redis_key_prefix=f"test-{unique}:",
        queue_prefix=f"test-{unique}.",
        events_exchange=f"test-{unique}.events",
        queue_expires_seconds=600,
        auth_url=auth_stub.url,
        auth_timeout_seconds=5,
        run_workers=False,
        frontend_url="https://app.example.edu",
        delivery_retry_delays_seconds=(0.2, 0.5, 1.0),
        stream_heartbeat_seconds=1.0,
    )


@pytest.fixture
async def db(settings: NotifierSettings) -> AsyncIterator[Database]:
    database = Database(settings)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def redis(settings: NotifierSettings) -> AsyncIterator[Redis]:
    async with scratch_redis(create_redis(settings), settings.redis_key_prefix) as client:
        yield client


async def _running_app(
    settings: NotifierSettings, jwt_keys: JwtKeys
) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    app = create_app(settings)
    app.state.token_verifier = static_verifier(jwt_keys, settings)
    async with (
        LifespanManager(app, startup_timeout=30, shutdown_timeout=30),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://notifier.test") as client,
    ):
        yield app, client


@pytest.fixture
async def client(
    settings: NotifierSettings, jwt_keys: JwtKeys, redis: Redis
) -> AsyncIterator[AsyncClient]:
    """The API in-process, without consumers, runner or relay (``RUN_WORKERS`` off)."""
    async for _, http in _running_app(settings, jwt_keys):
        yield http


@pytest.fixture
def admin(jwt_keys: JwtKeys, settings: NotifierSettings) -> Caller:
    return caller(jwt_keys, settings, "admin")


@pytest.fixture
def examiner(jwt_keys: JwtKeys, settings: NotifierSettings) -> Caller:
    return caller(jwt_keys, settings, "examiner")


@pytest.fixture
def student(jwt_keys: JwtKeys, settings: NotifierSettings) -> Caller:
    return caller(jwt_keys, settings, "student")


@pytest.fixture
async def worker_settings(settings: NotifierSettings) -> AsyncIterator[NotifierSettings]:
    """Settings with the consumers, the relay and jobs on; broker objects removed after."""
    from notifier_service.messaging.causes import CAUSES_QUEUE
    from notifier_service.messaging.users import USERS_QUEUE
    from notifier_support import drop_broker_objects

    with_workers = settings.model_copy(update={"run_workers": True})
    try:
        yield with_workers
    finally:
        await drop_broker_objects(with_workers, [CAUSES_QUEUE, USERS_QUEUE])


@pytest.fixture
async def worker_app(
    worker_settings: NotifierSettings, jwt_keys: JwtKeys, redis: Redis
) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """The app with its consumers and relay running against real RabbitMQ."""
    async for running in _running_app(worker_settings, jwt_keys):
        yield running
