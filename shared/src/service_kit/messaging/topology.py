"""RabbitMQ topology: the events exchange, and per consumer a work queue with
retry tiers and a dead-letter queue.

::

    events (topic) --routing keys--> <prefix><name>            quorum work queue
                                        | reject / delivery limit
                                        v
    <events>.dlx (direct) --<work>--> <prefix><name>.dlq       quorum DLQ
    consumer (transient error) --> <prefix><name>.retry.<d>    quorum, TTL d
                                        | expired: dead-lettered via ""
                                        v
                                    <prefix><name>             back to work

Validation errors are rejected and the work queue dead-letters them to the
DLQ; transient errors are re-published to the tier for their attempt and come
back after its TTL. ``x-delivery-limit`` catches a message that keeps killing
its consumer before any ack/reject. Every queue is a durable quorum queue with
at-least-once dead-lettering, so no hop loses a message when a node fails.

RabbitMQ refuses to redeclare a queue with other arguments. Retry tier names
carry their delay, so changing the delays creates new tiers; changing the
delivery limit of an existing queue needs a policy or a new queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractExchange

from service_kit.settings import KitSettings

DEFAULT_RETRY_DELAYS_SECONDS: tuple[float, ...] = (1.0, 10.0, 60.0)


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A consumer's queue: its name (without prefix) and the event types it binds."""

    name: str
    routing_keys: tuple[str, ...]
    retry_delays_seconds: tuple[float, ...] = DEFAULT_RETRY_DELAYS_SECONDS
    # Deliveries without ack before the broker dead-letters a message (crash loops).
    delivery_limit: int = 10
    prefetch: int | None = None
    """Messages of this queue handled at once by one process (its channel's prefetch);
    None: the process's ``CONSUMER_PREFETCH``. Lower for a queue whose every message
    already fans out into many concurrent calls (the notifier's delivery batches)."""

    def __post_init__(self) -> None:
        if not self.routing_keys:
            raise ValueError("a consumer queue needs at least one routing key")
        if any(d <= 0 for d in self.retry_delays_seconds):
            raise ValueError("retry delays must be positive")
        if self.prefetch is not None and self.prefetch < 1:
            raise ValueError("a queue's prefetch must be at least 1")


@dataclass(frozen=True, slots=True)
class QueueNames:
    """The broker names of one consumer's queues."""

    work: str
    retry: tuple[str, ...]
    dlq: str


def topic_matches(binding: str, routing_key: str) -> bool:
    """Whether a topic exchange routes ``routing_key`` to a queue bound by ``binding``.

    AMQP topic rules: ``*`` is exactly one word, ``#`` zero or more words.
    """

    def match(pattern: list[str], words: list[str]) -> bool:
        if not pattern:
            return not words
        head, rest = pattern[0], pattern[1:]
        if head == "#":
            return any(match(rest, words[i:]) for i in range(len(words) + 1))
        return bool(words) and head in ("*", words[0]) and match(rest, words[1:])

    return match(binding.split("."), routing_key.split("."))


def _delay_label(seconds: float) -> str:
    millis = round(seconds * 1000)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def queue_names(settings: KitSettings, spec: QueueSpec) -> QueueNames:
    work = f"{settings.queue_prefix}{spec.name}"
    return QueueNames(
        work=work,
        retry=tuple(f"{work}.retry.{_delay_label(d)}" for d in spec.retry_delays_seconds),
        dlq=f"{work}.dlq",
    )


def dead_letter_exchange_name(settings: KitSettings) -> str:
    return f"{settings.events_exchange}.dlx"


def _expiring(settings: KitSettings, arguments: dict[str, Any]) -> dict[str, Any]:
    if settings.queue_expires_seconds is not None:
        arguments["x-expires"] = round(settings.queue_expires_seconds * 1000)
    return arguments


def work_queue_arguments(settings: KitSettings, spec: QueueSpec) -> dict[str, Any]:
    names = queue_names(settings, spec)
    return _expiring(
        settings,
        {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": dead_letter_exchange_name(settings),
            "x-dead-letter-routing-key": names.work,
            "x-delivery-limit": spec.delivery_limit,
            # at-least-once dead-lettering needs reject-publish overflow; without it
            # a message can be lost between the work queue and the DLQ.
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )


def retry_queue_arguments(
    settings: KitSettings, work_queue: str, delay_seconds: float
) -> dict[str, Any]:
    return _expiring(
        settings,
        {
            "x-queue-type": "quorum",
            "x-message-ttl": round(delay_seconds * 1000),
            # The default exchange routes by queue name: expiry sends it back to work.
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": work_queue,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )


async def declare_events_exchange(
    channel: AbstractChannel, settings: KitSettings
) -> AbstractExchange:
    """The one durable topic exchange every event is published to."""
    return await channel.declare_exchange(
        settings.events_exchange, ExchangeType.TOPIC, durable=True
    )


async def declare_consumer_queues(
    channel: AbstractChannel, settings: KitSettings, spec: QueueSpec
) -> QueueNames:
    """Declares (idempotently) the exchanges, work queue, retry tiers and DLQ of ``spec``."""
    names = queue_names(settings, spec)
    events = await declare_events_exchange(channel, settings)
    dlx = await channel.declare_exchange(
        dead_letter_exchange_name(settings), ExchangeType.DIRECT, durable=True
    )
    dlq = await channel.declare_queue(
        names.dlq, durable=True, arguments=_expiring(settings, {"x-queue-type": "quorum"})
    )
    await dlq.bind(dlx, routing_key=names.work)
    work = await channel.declare_queue(
        names.work, durable=True, arguments=work_queue_arguments(settings, spec)
    )
    for key in spec.routing_keys:
        await work.bind(events, routing_key=key)
    for queue_name, delay in zip(names.retry, spec.retry_delays_seconds, strict=True):
        await channel.declare_queue(
            queue_name, durable=True, arguments=retry_queue_arguments(settings, names.work, delay)
        )
    return names


async def delete_consumer_queues(
    channel: AbstractChannel, settings: KitSettings, spec: QueueSpec
) -> None:
    """Deletes the queues of ``spec`` (tests and decommissioning only)."""
    names = queue_names(settings, spec)
    for name in (names.work, *names.retry, names.dlq):
        await channel.queue_delete(name)
