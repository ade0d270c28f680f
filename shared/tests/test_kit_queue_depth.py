"""Queue depth read from the broker: what waits in a consumer's work queue and DLQ."""

from __future__ import annotations

import aio_pika
import pytest
from kit_support import Rabbit
from prometheus_client import REGISTRY
from service_kit.messaging import QueueSpec, queue_names
from service_kit.messaging.depth import QueueDepthPoller
from service_kit.messaging.topology import declare_consumer_queues
from service_kit.settings import KitSettings
from test_kit_consumer import envelope, publish


def reading(name: str, metric: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(metric, {"queue": name, **labels})


async def test_the_poller_reports_ready_messages_dlq_and_consumers(
    settings: KitSettings, rabbit: Rabbit, unique: str
) -> None:
    name = f"depth-{unique}"
    spec = rabbit.track(QueueSpec(name, ("kit.probe",)))
    names = await declare_consumer_queues(rabbit.channel, settings, spec)
    poller = QueueDepthPoller(settings.rabbitmq_url, [(name, names)], interval=60)
    # Exported at 0 before the first reading.
    assert reading(name, "messages_queue_ready", kind="work") == 0
    assert reading(name, "messages_queue_consumers") == 0

    for n in range(3):
        await publish(rabbit, envelope({"n": n}))
    await rabbit.channel.default_exchange.publish(
        aio_pika.Message(b"dead", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        routing_key=names.dlq,
    )
    # A consumer that takes one message and holds it unacknowledged.
    connection = await aio_pika.connect(settings.rabbitmq_url)
    consuming = await connection.channel()
    await consuming.set_qos(prefetch_count=1)
    held = []

    async def hold(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        held.append(message)

    work = await consuming.get_queue(names.work)
    await work.consume(hold, no_ack=False)
    try:
        await poller.poll_once()
    finally:
        await poller.stop()
        await connection.close()
    # The message delivered to the consumer may or may not have left the queue's
    # ready count when the broker answered: ready counts what still waits.
    ready = reading(name, "messages_queue_ready", kind="work")
    assert ready is not None and 2 <= ready <= 3
    assert reading(name, "messages_queue_ready", kind="dead_letter") == 1
    assert reading(name, "messages_queue_consumers") == 1


async def test_a_missing_queue_leaves_the_last_reading_and_the_loop_alive(
    settings: KitSettings, unique: str
) -> None:
    name = f"depth-gone-{unique}"
    spec = QueueSpec(name, ("kit.probe",))
    poller = QueueDepthPoller(settings.rabbitmq_url, [(name, queue_names(settings, spec))])
    try:
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            await poller.poll_once()
        assert reading(name, "messages_queue_ready", kind="work") == 0
    finally:
        await poller.stop()
