"""The FastStream broker of a service, with the kit's topology and consumers.

A worker's composition root does::

    events = EventBroker(settings)
    users = events.consumer(
        QueueSpec("notifier.users", ("user.created",)), db=db, schema="notifier"
    )

    @users.handler(UserCreatedV1)     # an Event model: it gives the type and version
    async def on_user_created(event: ReceivedEvent[UserCreatedV1], session: AsyncSession) -> None:
        ...

    async with events:          # declares topology, starts consuming
        await stop_requested.wait()
    # leaving stops consuming, lets in-flight handlers finish (graceful timeout)

Consumers use ``AckPolicy.MANUAL``: the kit acknowledges after the handler's
transaction commits (see :mod:`service_kit.messaging.consumer`). The prefetch
bounds how many unacknowledged messages each consumer holds.
"""

from __future__ import annotations

import logging

import aio_pika
from faststream import AckPolicy
from faststream.rabbit import Channel, QueueType, RabbitBroker, RabbitQueue
from faststream.rabbit.annotations import RabbitMessage
from faststream.rabbit.prometheus import RabbitPrometheusMiddleware
from prometheus_client import REGISTRY

from service_kit.db import Database
from service_kit.messaging.consumer import EventConsumer
from service_kit.messaging.depth import QueueDepthPoller
from service_kit.messaging.topology import (
    QueueSpec,
    declare_consumer_queues,
    declare_events_exchange,
    queue_names,
)
from service_kit.settings import KitSettings

log = logging.getLogger(__name__)


class EventBroker:
    """One RabbitMQ connection per process for consuming, built from settings."""

    def __init__(
        self,
        settings: KitSettings,
        *,
        prefetch: int = 16,
        graceful_timeout_seconds: float = 15.0,
        rabbitmq_url: str | None = None,
    ) -> None:
        self.settings = settings
        self._url = rabbitmq_url or settings.rabbitmq_url
        self._prefetch = prefetch
        self.broker = RabbitBroker(
            self._url,
            app_id=settings.service_name,
            graceful_timeout=graceful_timeout_seconds,
            # The kit logs outcomes and keeps RED metrics; FastStream's
            # per-message lines would double every log entry.
            log_level=logging.DEBUG,
            # FastStream's own RED metrics (``faststream_*``) for every consumer and
            # every publish through this broker (the retry tiers), in the process
            # registry that ``/metrics`` serves. They count what the transport saw;
            # the kit's ``messages_handled_total`` says what the handler decided.
            middlewares=(
                RabbitPrometheusMiddleware(registry=REGISTRY, app_name=settings.service_name),
            ),
        )
        self._consumers: list[EventConsumer] = []
        self._started = False
        self._depth: QueueDepthPoller | None = None

    @property
    def consumers(self) -> tuple[EventConsumer, ...]:
        return tuple(self._consumers)

    def consumer(
        self,
        spec: QueueSpec,
        *,
        db: Database,
        schema: str,
        name: str | None = None,
    ) -> EventConsumer:
        """A consumer of ``spec``'s queue whose inbox lives in ``schema``.

        ``name`` keys the inbox (default: the queue name without prefix); keep
        it stable, or already-applied messages would be applied again.
        Register its handlers before :meth:`start`.
        """
        if self._started:
            raise RuntimeError("register consumers before the broker starts")
        names = queue_names(self.settings, spec)
        consumer = EventConsumer(
            broker=self.broker,
            spec=spec,
            names=names,
            db=db,
            schema=schema,
            name=name or spec.name,
        )

        async def on_message(message: RabbitMessage) -> None:
            await consumer.process(message)

        subscriber = self.broker.subscriber(
            # declare=False: the kit declares the queue with all its arguments
            # first (declare_topology); FastStream only checks it exists.
            RabbitQueue(names.work, QueueType.QUORUM, declare=False),
            channel=Channel(prefetch_count=spec.prefetch or self._prefetch),
            ack_policy=AckPolicy.MANUAL,
            no_reply=True,
            title=names.work,
            description=f"Events bound by {', '.join(spec.routing_keys)}",
        )
        subscriber(on_message)
        self._consumers.append(consumer)
        return consumer

    async def declare_topology(self) -> None:
        """Declares the events exchange and every consumer's queues (idempotent)."""
        connection = await aio_pika.connect(self._url)
        try:
            channel = await connection.channel()
            await declare_events_exchange(channel, self.settings)
            for consumer in self._consumers:
                await declare_consumer_queues(channel, self.settings, consumer.spec)
        finally:
            await connection.close()

    async def start(self) -> None:
        await self.declare_topology()
        await self.broker.start()
        self._started = True
        # messages_queue_ready/consumers: what waits in the broker (depth.py).
        self._depth = QueueDepthPoller(
            self._url,
            [(c.spec.name, c.names) for c in self._consumers],
            interval=self.settings.queue_depth_poll_seconds,
        )
        self._depth.start()
        log.info("consuming from %s", ", ".join(c.names.work for c in self._consumers) or "-")

    async def stop(self) -> None:
        """Stops taking messages, waits for in-flight handlers, then disconnects.

        Messages prefetched but not started are never acknowledged, so the
        broker hands them to another replica when the channel closes.
        """
        if self._depth is not None:
            await self._depth.stop()
            self._depth = None
        await self.broker.stop()
        self._started = False

    async def ping(self) -> None:
        """Readiness: raises unless connected to RabbitMQ."""
        if not await self.broker.ping(timeout=1.0):
            raise ConnectionError("RabbitMQ connection is down")

    async def __aenter__(self) -> EventBroker:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()
