"""Fixtures of the auth tests: real PostgreSQL, Redis and RabbitMQ, isolated per test.

Migrations run once per session into a template database; every test gets a
copy of it (``auth_test_<uuid>``, dropped afterwards even on failure), its own
Redis key prefix, queue prefix and events exchange, so tests run in any order
and next to ``make run``. Argon2 runs with tiny parameters except where a test
says otherwise.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aio_pika
import httpx
import pytest
from asgi_lifespan import LifespanManager
from auth_service.contracts import USER_IMPORT_QUEUE
from auth_service.keys import generate_key_file
from auth_service.main import create_app
from auth_service.settings import AuthSettings
from auth_support import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    RABBITMQ_URL,
    REDIS_URL,
    EventTap,
    Keys,
    Service,
    StartService,
)
from redis.asyncio import Redis
from service_kit.messaging.topology import dead_letter_exchange_name, delete_consumer_queues
from service_kit.migrations import upgrade_to_head
from service_kit.testing import (
    create_database,
    drop_database,
    temporary_database,
    unique_database_name,
)

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    directory = tmp_path_factory.mktemp("keys")
    current, previous = directory / "current.pem", directory / "previous.pem"
    generate_key_file(current)
    generate_key_file(previous)
    return Keys(current=current, previous=previous)


@pytest.fixture(scope="session")
def template_database() -> Iterator[str]:
    """A database migrated to head once; each test's database is a copy of it."""
    name = unique_database_name("auth_test_tpl")
    url = asyncio.run(create_database(name))
    try:
        asyncio.run(upgrade_to_head(ALEMBIC_INI, url))
        yield name
    finally:
        asyncio.run(drop_database(name))


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
async def database_url(template_database: str) -> AsyncIterator[str]:
    async with temporary_database("auth_test", template=template_database) as url:
        yield url


@pytest.fixture
def settings(database_url: str, unique: str, keys: Keys) -> AuthSettings:
    return AuthSettings(
        _env_file=None,
        environment="test",
        log_json=False,
        database_url=database_url,
        redis_url=REDIS_URL,
        rabbitmq_url=RABBITMQ_URL,
        redis_key_prefix=f"auth-test:{unique}:",
        queue_prefix=f"auth-test-{unique}.",
        events_exchange=f"auth-test-{unique}.events",
        queue_expires_seconds=600,
        jwt_signing_key_file=str(keys.current),
        argon2_memory_kib=64,
        argon2_time_cost=1,
        argon2_parallelism=1,
        password_hash_workers=2,
        admin_email=ADMIN_EMAIL,
        admin_password=ADMIN_PASSWORD,
        db_pool_size=5,
    )


@pytest.fixture
async def start_service(settings: AuthSettings) -> AsyncIterator[StartService]:
    """Starts the app (lifespan included) with ``settings`` changed by keyword arguments.

    Several may run at once against the same database, like replicas.
    """
    running: list[tuple[LifespanManager, httpx.AsyncClient]] = []

    async def start(**changes: object) -> Service:
        service_settings = settings.model_copy(update=changes)
        app = create_app(service_settings)
        manager = LifespanManager(app, startup_timeout=20, shutdown_timeout=20)
        await manager.__aenter__()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://auth.test"
        )
        running.append((manager, client))
        return Service(app, client, service_settings)

    try:
        yield start
    finally:
        for manager, client in reversed(running):
            await client.aclose()
            await manager.__aexit__(None, None, None)
        redis = Redis.from_url(REDIS_URL)
        try:
            keys = [k async for k in redis.scan_iter(match=f"{settings.redis_key_prefix}*")]
            if keys:
                await redis.delete(*keys)
        finally:
            await redis.aclose()
        connection = await aio_pika.connect(RABBITMQ_URL)
        try:
            channel = await connection.channel()
            # The import consumer's quorum queues (and their retry tiers and DLQ):
            # left to expire, hundreds of them pile up and slow the broker for all.
            await delete_consumer_queues(channel, settings, USER_IMPORT_QUEUE)
            await channel.exchange_delete(settings.events_exchange)
            await channel.exchange_delete(dead_letter_exchange_name(settings))
        finally:
            await connection.close()


@pytest.fixture
async def service(start_service: StartService) -> Service:
    return await start_service()


@pytest.fixture
async def admin_token(service: Service) -> str:
    return await service.access_token(ADMIN_EMAIL, ADMIN_PASSWORD)


@pytest.fixture
async def event_tap(settings: AuthSettings) -> AsyncIterator[EventTap]:
    """A private queue bound to every ``user.*`` event of this test's exchange."""
    tap = await EventTap.open(settings, ("user.*",))
    try:
        yield tap
    finally:
        await tap.close()
