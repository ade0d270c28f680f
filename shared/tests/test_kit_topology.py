from __future__ import annotations

import asyncio

import aio_pika
import pytest
from kit_support import Rabbit, death_reason
from service_kit.messaging import QueueSpec, declare_consumer_queues, queue_names
from service_kit.messaging.topology import dead_letter_exchange_name
from service_kit.settings import KitSettings


def test_names_carry_the_prefix_and_the_tier_delays(settings: KitSettings) -> None:
    spec = QueueSpec("notifier.users", ("user.*",), retry_delays_seconds=(1, 10, 0.25))
    names = queue_names(settings, spec)
    prefix = settings.queue_prefix
    assert names.work == f"{prefix}notifier.users"
    assert names.retry == (
        f"{prefix}notifier.users.retry.1s",
        f"{prefix}notifier.users.retry.10s",
        f"{prefix}notifier.users.retry.250ms",
    )
    assert names.dlq == f"{prefix}notifier.users.dlq"
    assert dead_letter_exchange_name(settings) == f"{settings.events_exchange}.dlx"


def test_spec_refuses_no_routing_keys_non_positive_delays_and_no_prefetch() -> None:
    with pytest.raises(ValueError):
        QueueSpec("q", ())
    with pytest.raises(ValueError):
        QueueSpec("q", ("a.b",), retry_delays_seconds=(0,))
    with pytest.raises(ValueError):
        QueueSpec("q", ("a",), prefetch=0)
    assert QueueSpec("q", ("a",), prefetch=2).prefetch == 2


async def test_declared_topology_routes_dead_letters_and_returns_retries(
    settings: KitSettings, rabbit: Rabbit, unique: str
) -> None:
    spec = rabbit.track(QueueSpec(f"t-{unique}", ("kit.a", "kit.b.*"), retry_delays_seconds=(0.2,)))
    names = await declare_consumer_queues(rabbit.channel, settings, spec)
    # Idempotent: a second replica (or restart) declares the same thing.
    assert await declare_consumer_queues(rabbit.channel, settings, spec) == names

    exchange = await rabbit.channel.get_exchange(settings.events_exchange)
    for key in ("kit.a", "kit.b.c", "kit.other"):
        await exchange.publish(aio_pika.Message(key.encode()), routing_key=key)
    routed = sorted(m.body for m in await rabbit.drain(names.work, 0.3))
    assert routed == [b"kit.a", b"kit.b.c"]

    # A rejected message lands in the DLQ.
    await exchange.publish(aio_pika.Message(b"poison"), routing_key="kit.a")
    work = await rabbit.queue(names.work)
    message = await work.get(timeout=5)
    await message.reject(requeue=False)
    assert (await rabbit.get(names.dlq)).body == b"poison"

    # A message parked in a retry tier comes back to work after the tier's TTL.
    await rabbit.channel.default_exchange.publish(
        aio_pika.Message(b"later"), routing_key=names.retry[0]
    )
    assert await rabbit.message_count(names.work) == 0
    back = await rabbit.get(names.work, timeout=5)
    assert back.body == b"later"
    assert death_reason(back) == "expired"


async def test_queues_of_an_abandoned_run_expire_when_asked(
    settings: KitSettings, unique: str
) -> None:
    expiring = settings.model_copy(update={"queue_expires_seconds": 1.0})
    spec = QueueSpec(f"exp-{unique}", ("kit.expiring",), retry_delays_seconds=(0.2,))
    connection = await aio_pika.connect(settings.rabbitmq_url)
    try:
        names = await declare_consumer_queues(await connection.channel(), expiring, spec)
        remaining = {names.work, *names.retry, names.dlq}
        # Quorum queues check their lease on a timer of a few seconds.
        for _ in range(60):
            for name in sorted(remaining):
                probe = await connection.channel()
                try:
                    await probe.declare_queue(name, passive=True)
                    await probe.close()
                except aio_pika.exceptions.ChannelClosed:
                    remaining.discard(name)
            if not remaining:
                break
            await asyncio.sleep(0.5)
        assert remaining == set()
    finally:
        await connection.close()
