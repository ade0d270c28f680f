"""The kit's consumer against a real broker and database: DLQ, retry tiers, inbox, shutdown."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aio_pika
import orjson
from kit_events import Probe
from kit_support import SCHEMA, Rabbit, death_reason, equals, wait_until
from prometheus_client import REGISTRY
from service_kit.db import Database
from service_kit.messaging import (
    EventBroker,
    EventConsumer,
    QueueSpec,
    ReceivedEvent,
    TransientError,
    queue_names,
)
from service_kit.settings import KitSettings
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

RETRY_DELAYS = (0.2, 0.4)


def envelope(
    data: dict[str, Any], *, version: int = 1, message_id: uuid.UUID | None = None
) -> bytes:
    return orjson.dumps(
        {
            "id": str(message_id or uuid.uuid4()),
            "type": "kit.probe",
            "version": version,
            "occurred_at": datetime.now(UTC).isoformat(),
            "producer": "kit-test",
            "correlation_id": "req-consumer",
            "data": data,
        }
    )


async def publish(rabbit: Rabbit, body: bytes, routing_key: str = "kit.probe") -> None:
    exchange = await rabbit.channel.get_exchange(rabbit.settings.events_exchange)
    await exchange.publish(
        aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        routing_key=routing_key,
    )


def handled(queue: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "messages_handled_total", {"queue": queue, "type": "kit.probe", "outcome": outcome}
    )
    return value or 0.0


@asynccontextmanager
async def running_consumer(
    db: Database,
    settings: KitSettings,
    rabbit: Rabbit,
    name: str,
    handler: Callable[[ReceivedEvent[Probe], AsyncSession], Any],
) -> AsyncIterator[EventConsumer]:
    spec = rabbit.track(QueueSpec(name, ("kit.probe",), retry_delays_seconds=RETRY_DELAYS))
    async with db.transaction() as session:
        await session.execute(text("CREATE TABLE IF NOT EXISTS kit.applied (n int NOT NULL)"))
    events = EventBroker(settings, prefetch=4, graceful_timeout_seconds=5.0)
    consumer = events.consumer(spec, db=db, schema=SCHEMA)
    consumer.handler(Probe)(handler)
    async with events:
        yield consumer


async def applied(db: Database) -> list[int]:
    async with db.read_session() as session:
        return list((await session.execute(text("SELECT n FROM kit.applied ORDER BY n"))).scalars())


async def record(event: ReceivedEvent[Probe], session: AsyncSession) -> None:
    await session.execute(text("INSERT INTO kit.applied VALUES (:n)"), {"n": event.data.n})


async def test_invalid_payload_unknown_version_and_garbage_go_straight_to_dlq(
    db: Database, settings: KitSettings, rabbit: Rabbit, unique: str
) -> None:
    async with running_consumer(db, settings, rabbit, f"c-{unique}", record) as consumer:
        await publish(rabbit, envelope({"n": "not a number"}))
        await publish(rabbit, envelope({"n": 2}, version=2))
        await publish(rabbit, b"\xff not json")
        await publish(rabbit, envelope({"n": 1}))
        dead = [await rabbit.get(consumer.names.dlq) for _ in range(3)]
        await wait_until(lambda: equals(applied(db), [1]))
    assert [death_reason(m) for m in dead] == ["rejected"] * 3
    assert await rabbit.message_count(consumer.names.work) == 0
    for retry in consumer.names.retry:
        assert await rabbit.message_count(retry) == 0


async def test_transient_error_is_retried_through_the_tiers_then_succeeds(
    db: Database, settings: KitSettings, rabbit: Rabbit, unique: str
) -> None:
    attempts: list[int] = []

    async def flaky(event: ReceivedEvent[Probe], session: AsyncSession) -> None:
        attempts.append(event.attempt)
        await record(event, session)  # rolled back with the failure below
        if event.attempt < len(RETRY_DELAYS):
            raise TransientError("dependency briefly down")

    name = f"c-{unique}"
    async with running_consumer(db, settings, rabbit, name, flaky) as consumer:
        await publish(rabbit, envelope({"n": 7}))
        await wait_until(lambda: equals(applied(db), [7]), timeout=10)
        assert await rabbit.drain(consumer.names.dlq, 0.3) == []
    assert attempts == [0, 1, 2]
    assert handled(name, "retried") == 2
    assert handled(name, "ok") == 1
    # FastStream's middleware (added by EventBroker) saw the same traffic: three
    # deliveries consumed, and each retry copy published to its tier queue.
    app = {"app_name": settings.service_name, "broker": "rabbitmq"}
    received = REGISTRY.get_sample_value(
        "faststream_received_messages_total",
        {**app, "handler": f"{settings.events_exchange}.kit.probe"},
    )
    assert received == 1  # the first delivery; the tier copies arrive by queue name
    for tier in consumer.names.retry:
        published = REGISTRY.get_sample_value(
            "faststream_published_messages_total",
            {**app, "destination": f"default.{tier}", "status": "success"},
        )
        assert published == 1, tier


async def test_transient_error_after_the_last_tier_goes_to_dlq(
    db: Database, settings: KitSettings, rabbit: Rabbit, unique: str
) -> None:
    attempts: list[int] = []

    async def always_down(event: ReceivedEvent[Probe], session: AsyncSession) -> None:
        attempts.append(event.attempt)
        raise ConnectionError("database unreachable")

    async with running_consumer(db, settings, rabbit, f"c-{unique}", always_down) as consumer:
        await publish(rabbit, envelope({"n": 1}))
        dead = await rabbit.get(consumer.names.dlq, timeout=10)
    assert attempts == [0, 1, 2]
    assert (dead.headers or {})["x-retry-attempt"] == 2
    assert await applied(db) == []


async def test_unexpected_error_is_dead_lettered_without_retry(
    db: Database, settings: KitSettings, rabbit: Rabbit, unique: str
) -> None:
    attempts: list[int] = []

    async def buggy(event: ReceivedEvent[Probe], session: AsyncSession) -> None:
        attempts.append(event.attempt)
        raise KeyError("a bug")

    async with running_consumer(db, settings, rabbit, f"c-{unique}", buggy) as consumer:
        await publish(rabbit, envelope({"n": 1}))
        await rabbit.get(consumer.names.dlq)
    assert attempts == [0]


async def test_duplicate_delivery_is_applied_once(
    db: Database, settings: KitSettings, rabbit: Rabbit, unique: str
) -> None:
    name = f"c-{unique}"
    message_id = uuid.uuid4()
    async with running_consumer(db, settings, rabbit, name, record):
        await publish(rabbit, envelope({"n": 5}, message_id=message_id))
        await publish(rabbit, envelope({"n": 5}, message_id=message_id))
        await wait_until(lambda: handled(name, "duplicate") == 1)
    assert await applied(db) == [5]


async def test_shutdown_finishes_in_flight_handler_and_acks_it(
    db: Database, settings: KitSettings, rabbit: Rabbit, unique: str
) -> None:
    started = asyncio.Event()

    async def slow(event: ReceivedEvent[Probe], session: AsyncSession) -> None:
        started.set()
        await asyncio.sleep(0.5)
        await record(event, session)

    spec_name = f"c-{unique}"
    async with running_consumer(db, settings, rabbit, spec_name, slow):
        await publish(rabbit, envelope({"n": 3}))
        await asyncio.wait_for(started.wait(), 5)
    # Leaving the block stopped the broker while the handler ran.
    assert await applied(db) == [3]
    names = queue_names(settings, QueueSpec(spec_name, ("kit.probe",), RETRY_DELAYS))
    assert await rabbit.message_count(names.work) == 0
