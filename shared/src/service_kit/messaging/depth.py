"""Queue depth as the broker counts it, for each queue this process consumes.

FastStream's and the kit's metrics count what a consumer received and handled;
neither sees messages still waiting in RabbitMQ, which is what a stalled
consumer leaves behind. Every ``interval`` seconds a process that consumes asks
the broker (a passive declare: nothing is created or changed) how many messages
are ready in each of its work queues and dead-letter queues, and how many
consumers its work queues have. Every replica reports the same numbers: read
them with ``max by (queue)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection
from prometheus_client import Gauge

from service_kit.messaging.topology import QueueNames

log = logging.getLogger(__name__)

QUEUE_READY = Gauge(
    "messages_queue_ready",
    "Messages ready (waiting, not yet delivered) in a consumer's queue as the broker counts "
    "them, by consumer queue and kind (work, dead_letter); polled by each consuming process.",
    ["queue", "kind"],
)
QUEUE_CONSUMERS = Gauge(
    "messages_queue_consumers",
    "Consumers attached to a consumer's work queue as the broker counts them.",
    ["queue"],
)


class QueueDepthPoller:
    """Polls the depth of ``queues`` (consumer name, broker names) until stopped."""

    def __init__(
        self, url: str, queues: Sequence[tuple[str, QueueNames]], *, interval: float = 15.0
    ) -> None:
        self._url = url
        self._queues = tuple(queues)
        self._interval = interval
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._task: asyncio.Task[None] | None = None
        for name, _ in self._queues:
            QUEUE_READY.labels(name, "work")
            QUEUE_READY.labels(name, "dead_letter")
            QUEUE_CONSUMERS.labels(name)

    def start(self) -> None:
        if self._queues and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="queue-depth")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
            self._connection = self._channel = None

    async def poll_once(self) -> None:
        """One reading of every queue (raises when the broker cannot be asked)."""
        if self._connection is None or self._connection.is_closed:
            self._connection = await aio_pika.connect(self._url)
            self._channel = None
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._connection.channel()
        for name, names in self._queues:
            work = await self._channel.declare_queue(names.work, passive=True)
            dlq = await self._channel.declare_queue(names.dlq, passive=True)
            QUEUE_READY.labels(name, "work").set(work.declaration_result.message_count or 0)
            QUEUE_READY.labels(name, "dead_letter").set(dlq.declaration_result.message_count or 0)
            QUEUE_CONSUMERS.labels(name).set(work.declaration_result.consumer_count or 0)

    async def _loop(self) -> None:
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The broker is down or a queue is gone: the last readings stay, the
                # readiness probe and the consumers' own metrics tell the rest.
                log.warning("queue depth not read: %r", exc)
                self._channel = None
            await asyncio.sleep(self._interval)
