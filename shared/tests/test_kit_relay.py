"""The outbox relay under failure: crash after publish, concurrent relays, broker outage."""

from __future__ import annotations

import asyncio

from kit_events import Probe
from kit_support import SCHEMA, Rabbit, TcpProxy, equals, fast_relay, wait_until
from prometheus_client import REGISTRY
from service_kit.db import Database
from service_kit.messaging import (
    EventBroker,
    QueueSpec,
    ReceivedEvent,
    add_event,
    declare_consumer_queues,
    unsent_count,
)
from service_kit.messaging.relay import within_budget
from service_kit.messaging.tables import tables_for
from service_kit.settings import KitSettings
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession


async def add_probes(db: Database, count: int) -> list[str]:
    async with db.transaction() as session:
        return [str(await add_event(session, Probe(n=n))) for n in range(count)]


async def unsent(db: Database) -> int:
    async with db.read_session() as session:
        return await unsent_count(session, schema=SCHEMA)


def handled(queue: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "messages_handled_total", {"queue": queue, "type": "kit.probe", "outcome": outcome}
    )
    return value or 0.0


async def test_relay_killed_before_marking_sent_resends_and_inbox_applies_once(
    db: Database, settings: KitSettings, rabbit: Rabbit, unique: str
) -> None:
    spec = rabbit.track(QueueSpec(f"applier-{unique}", ("kit.probe",)))
    async with db.transaction() as session:
        await session.execute(text("CREATE TABLE kit.applied (n int NOT NULL)"))
        await session.execute(text("CREATE TABLE kit.fault (armed bool NOT NULL)"))
        await session.execute(text("INSERT INTO kit.fault VALUES (true)"))
        # While armed, marking rows sent stalls: the relay has published and
        # confirmed but not committed when we kill it.
        await session.execute(
            text(
                """
                CREATE FUNCTION kit.stall() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                  IF (SELECT armed FROM kit.fault) THEN PERFORM pg_sleep(30); END IF;
                  RETURN NEW;
                END $$
                """
            )
        )
        await session.execute(
            text(
                "CREATE TRIGGER stall BEFORE UPDATE ON kit.outbox "
                "FOR EACH ROW EXECUTE FUNCTION kit.stall()"
            )
        )

    events = EventBroker(settings)
    consumer = events.consumer(spec, db=db, schema=SCHEMA)

    @consumer.handler(Probe)
    async def apply(event: ReceivedEvent[Probe], session: AsyncSession) -> None:
        await session.execute(text("INSERT INTO kit.applied VALUES (:n)"), {"n": event.data.n})

    async def applied_rows() -> int:
        async with db.read_session() as session:
            return int(await session.scalar(text("SELECT count(*) FROM kit.applied")) or 0)

    async with events:
        await add_probes(db, 1)
        first = fast_relay(db, settings)
        first.start()
        await wait_until(lambda: equals(applied_rows(), 1))
        # Kill the relay mid-commit: cancel its task and cut its database
        # session, as a crashed pod's connection would be.
        await first.stop(timeout_seconds=0.1)
        await _terminate_backends_stuck_in_sleep(db)
        async with db.transaction() as session:
            await session.execute(text("UPDATE kit.fault SET armed = false"))
        assert await unsent(db) == 1

        second = fast_relay(db, settings)
        second.start()
        try:
            await wait_until(lambda: equals(unsent(db), 0))
            await wait_until(lambda: handled(spec.name, "duplicate") == 1)
        finally:
            await second.stop()
        assert await applied_rows() == 1
        assert handled(spec.name, "ok") == 1


async def test_concurrent_relays_publish_every_event_exactly_once(
    db: Database, settings: KitSettings, rabbit: Rabbit, unique: str
) -> None:
    spec = rabbit.track(QueueSpec(f"probe-{unique}", ("kit.probe",)))
    names = await declare_consumer_queues(rabbit.channel, settings, spec)
    ids = await add_probes(db, 300)
    relays = [fast_relay(db, settings, batch_size=10) for _ in range(3)]
    for relay in relays:
        relay.start()
    try:
        received: list[str] = []
        while len(received) < len(ids):
            received.append(str((await rabbit.get(names.work)).message_id))
        received += [str(m.message_id) for m in await rabbit.drain(names.work, 0.5)]
    finally:
        for relay in relays:
            await relay.stop()
    assert sorted(received) == sorted(ids)
    assert await unsent(db) == 0


async def test_rows_stay_unsent_while_broker_is_down_and_relay_recovers(
    db: Database, settings: KitSettings, rabbit: Rabbit, unique: str, broker_proxy: TcpProxy
) -> None:
    spec = rabbit.track(QueueSpec(f"probe-{unique}", ("kit.probe",)))
    names = await declare_consumer_queues(rabbit.channel, settings, spec)
    errors_before = _relay_errors("broker")
    relay = fast_relay(db, settings, rabbitmq_url=broker_proxy.amqp_url)
    relay.start()
    try:
        # The broker address refuses connections.
        first = await add_probes(db, 3)
        await asyncio.sleep(0.5)
        assert await unsent(db) == 3
        assert _relay_errors("broker") > errors_before
        await wait_until(lambda: _gauge("outbox_backlog") == 3, timeout=3)
        await wait_until(lambda: _gauge("outbox_oldest_unsent_age_seconds") > 0.5, timeout=3)

        await broker_proxy.start()
        await wait_until(lambda: equals(unsent(db), 0))
        assert sorted(str(m.message_id) for m in await rabbit.drain(names.work)) == sorted(first)

        # The broker goes away again mid-run, with open connections cut.
        await broker_proxy.stop()
        second = await add_probes(db, 2)
        await asyncio.sleep(0.8)
        assert await unsent(db) == 2
        await broker_proxy.start()
        await wait_until(lambda: equals(unsent(db), 0))
        assert sorted(str(m.message_id) for m in await rabbit.drain(names.work)) == sorted(second)
    finally:
        await relay.stop()
    outbox = tables_for(SCHEMA).outbox
    async with db.read_session() as session:
        sent_at = (await session.execute(select(outbox.c.sent_at))).scalars().all()
    assert len(sent_at) == 5 and all(s is not None for s in sent_at)


def _gauge(name: str) -> float:
    value = REGISTRY.get_sample_value(name, {"service": "kit-test"})
    assert value is not None
    return value


def _relay_errors(cause: str) -> float:
    value = REGISTRY.get_sample_value(
        "outbox_relay_errors_total", {"service": "kit-test", "cause": cause}
    )
    return value or 0.0


async def _terminate_backends_stuck_in_sleep(db: Database) -> None:
    async with db.transaction() as session:
        await session.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND wait_event = 'PgSleep'"
            )
        )


def test_a_batch_takes_rows_up_to_its_byte_budget_and_never_none() -> None:
    claimed = [("a", 400), ("b", 400), ("c", 400)]
    assert within_budget(claimed, 1000) == ["a", "b"]
    assert within_budget(claimed, 10_000) == ["a", "b", "c"]
    # An event bigger than the budget still goes out, alone.
    assert within_budget([("big", 5000), ("b", 1)], 1000) == ["big"]
    assert within_budget([("a", None)], 0) == ["a"]


async def test_big_events_go_out_in_byte_bounded_batches_in_order(
    db: Database, settings: KitSettings, rabbit: Rabbit, unique: str
) -> None:
    """Before: 100 big rows per batch, decoded at once, held hundreds of MB in the relay."""
    spec = rabbit.track(QueueSpec(f"probe-{unique}", ("kit.probe",)))
    names = await declare_consumer_queues(rabbit.channel, settings, spec)
    ids = await add_probes(db, 40)
    # Every probe is larger than this budget: one row per batch, 40 batches in a row.
    relay = fast_relay(db, settings, batch_size=100, batch_bytes=1)
    relay.start()
    try:
        received = [str((await rabbit.get(names.work)).message_id) for _ in ids]
    finally:
        await relay.stop()
    assert received == ids  # in order, every one
    assert await unsent(db) == 0
