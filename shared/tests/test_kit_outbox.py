from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest
from aio_pika import DeliveryMode
from kit_events import CustomRouted, Probe, ProbeV2
from kit_support import SCHEMA, Rabbit, fast_relay
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from pydantic import BaseModel, Field
from service_kit.context import request_id_var
from service_kit.db import Database
from service_kit.messaging import (
    Event,
    EventEnvelope,
    QueueSpec,
    add_event,
    declare_consumer_queues,
    unsent_count,
)
from service_kit.messaging.tables import tables_for
from service_kit.settings import KitSettings
from sqlalchemy import select


async def test_committed_event_reaches_queue_with_its_envelope(
    db: Database, settings: KitSettings, rabbit: Rabbit, unique: str
) -> None:
    spec = rabbit.track(QueueSpec(f"probe-{unique}", ("kit.probe",)))
    names = await declare_consumer_queues(rabbit.channel, settings, spec)
    trace_id, span_id = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
    parent = NonRecordingSpan(
        SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    )
    token = request_id_var.set("req-outbox-1")
    try:
        with trace.use_span(parent):
            async with db.transaction() as session:
                event_id = await add_event(session, ProbeV2(n=1, mark=Decimal("12.50")))
    finally:
        request_id_var.reset(token)

    relay = fast_relay(db, settings)
    relay.start()
    try:
        message = await rabbit.get(names.work)
    finally:
        await relay.stop()

    assert message.message_id == str(event_id)
    assert message.type == "kit.probe"
    assert message.content_type == "application/json"
    assert message.delivery_mode == DeliveryMode.PERSISTENT
    assert message.correlation_id == "req-outbox-1"
    headers = message.headers or {}
    assert headers["x-schema-version"] == 2
    assert headers["x-request-id"] == "req-outbox-1"
    assert headers["traceparent"] == f"00-{trace_id:032x}-{span_id:016x}-01"
    envelope = EventEnvelope.from_body(message.body)
    assert envelope.id == event_id
    assert envelope.version == 2
    assert envelope.producer == "kit"
    assert envelope.correlation_id == "req-outbox-1"
    assert envelope.data == {"n": 1, "mark": "12.50"}
    async with db.read_session() as session:
        assert await unsent_count(session, schema=SCHEMA) == 0


async def test_rolled_back_transaction_publishes_nothing(
    db: Database, settings: KitSettings, rabbit: Rabbit, unique: str
) -> None:
    spec = rabbit.track(QueueSpec(f"probe-{unique}", ("kit.probe",)))
    names = await declare_consumer_queues(rabbit.channel, settings, spec)
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await add_event(session, Probe(n=1))
            raise RuntimeError("business change failed")

    relay = fast_relay(db, settings)
    try:
        assert await relay.relay_once() == 0
    finally:
        await relay.stop()
    async with db.read_session() as session:
        assert await unsent_count(session, schema=SCHEMA) == 0
    assert await rabbit.drain(names.work, settle_seconds=0.3) == []


async def test_notify_wakes_the_relay_long_before_its_poll_interval(
    db: Database, settings: KitSettings, rabbit: Rabbit, unique: str
) -> None:
    spec = rabbit.track(QueueSpec(f"probe-{unique}", ("kit.probe",)))
    names = await declare_consumer_queues(rabbit.channel, settings, spec)
    relay = fast_relay(db, settings, poll_interval_seconds=60.0)
    relay.start()
    try:
        await asyncio.sleep(1.0)  # the relay is idle, listening
        async with db.transaction() as session:
            event_id = await add_event(session, Probe(n=1))
        message = await rabbit.get(names.work, timeout=3.0)
        assert message.message_id == str(event_id)
    finally:
        await relay.stop()


class _Unpublishable(Event):
    """A base for events: no event_type, so nothing to publish."""

    producer = SCHEMA

    n: int = Field(description="A number.", examples=[1])


class _PlainModel(BaseModel):
    n: int


async def test_add_event_refuses_what_is_not_a_concrete_event(db: Database) -> None:
    async with db.transaction() as session:
        with pytest.raises(TypeError):
            await add_event(session, _Unpublishable(n=1))
        with pytest.raises(TypeError):
            await add_event(session, _PlainModel(n=1))  # type: ignore[arg-type]


async def test_outbox_row_takes_type_version_routing_key_and_producer_from_the_model(
    db: Database,
) -> None:
    token = request_id_var.set("req-outbox-row")
    try:
        async with db.transaction() as session:
            routed = await add_event(session, CustomRouted(id=uuid.UUID(int=7)))
            second = await add_event(session, ProbeV2(n=3, mark=Decimal("7.5")))
    finally:
        request_id_var.reset(token)
    outbox = tables_for(SCHEMA).outbox
    async with db.read_session() as session:
        rows = {
            row.id: row
            for row in (
                await session.execute(select(outbox).where(outbox.c.id.in_([routed, second])))
            )
        }
    row = rows[routed]
    assert (row.type, row.version, row.routing_key, row.producer) == (
        "kit.routed", 1, "kit.custom", "kit",
    )  # fmt: skip
    assert row.payload == {"id": str(uuid.UUID(int=7))}
    assert row.headers["x-request-id"] == "req-outbox-row"
    assert row.sent_at is None and row.attempts == 0
    row = rows[second]
    assert (row.type, row.version, row.routing_key) == ("kit.probe", 2, "kit.probe")
    assert row.payload == {"n": 3, "mark": "7.5"}
