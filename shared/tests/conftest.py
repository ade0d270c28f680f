"""Fixtures of the kit's tests: real PostgreSQL, Redis and RabbitMQ, isolated per test.

Every test gets its own database (dropped afterwards, even on failure), its
own events exchange, queue prefix and Redis key prefix, so tests run in any
order, in parallel, and next to ``make run``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
from kit_support import RABBITMQ_URL, REDIS_URL, SCHEMA, Rabbit, TcpProxy
from redis.asyncio import Redis
from service_kit.db import Database
from service_kit.messaging.tables import kit_tables
from service_kit.messaging.topology import dead_letter_exchange_name, delete_consumer_queues
from service_kit.settings import KitSettings
from service_kit.testing import scratch_redis, temporary_database
from sqlalchemy import MetaData
from sqlalchemy.schema import CreateSchema


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def settings(unique: str) -> KitSettings:
    return KitSettings(
        service_name="kit-test",
        environment="test",
        rabbitmq_url=RABBITMQ_URL,
        redis_url=REDIS_URL,
        events_exchange=f"kit-test-{unique}.events",
        queue_prefix=f"kit-test-{unique}.",
        redis_key_prefix=f"kit-test:{unique}:",
        queue_expires_seconds=600,
        db_pool_size=5,
        db_max_overflow=5,
        db_statement_timeout_ms=15_000,
    )


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    async with temporary_database("kit_test") as url:
        yield url


@pytest.fixture
def db_settings(settings: KitSettings, database_url: str) -> KitSettings:
    return settings.model_copy(update={"database_url": database_url})


@pytest.fixture
async def db(db_settings: KitSettings) -> AsyncIterator[Database]:
    """A Database whose schema ``kit`` holds the outbox and inbox tables."""
    database = Database(db_settings)
    metadata = MetaData()
    kit_tables(metadata, SCHEMA)
    async with database.primary.begin() as conn:
        await conn.execute(CreateSchema(SCHEMA))
        await conn.run_sync(metadata.create_all)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def rabbit(settings: KitSettings) -> AsyncIterator[Rabbit]:
    connection = await aio_pika.connect(RABBITMQ_URL)
    channel = await connection.channel()
    state = Rabbit(settings, channel)
    try:
        yield state
    finally:
        cleanup = await connection.channel()
        for spec in state.specs:
            await delete_consumer_queues(cleanup, settings, spec)
        await cleanup.exchange_delete(settings.events_exchange)
        await cleanup.exchange_delete(dead_letter_exchange_name(settings))
        await connection.close()


@pytest.fixture
async def redis(settings: KitSettings) -> AsyncIterator[Redis]:
    async with scratch_redis(Redis.from_url(REDIS_URL), settings.redis_key_prefix) as client:
        yield client


@pytest.fixture
async def broker_proxy() -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(5672)
    try:
        yield proxy
    finally:
        await proxy.stop()
