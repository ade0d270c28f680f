"""Consuming events: parse, validate, apply once, acknowledge after commit.

For each delivery an :class:`EventConsumer`

1. parses the envelope and validates ``data`` against the event model
   registered for its (type, version) by :meth:`EventConsumer.handler`;
   anything else is rejected, and the work queue dead-letters it to the DLQ;
2. opens a transaction, claims the message id in the inbox (a duplicate is
   acknowledged and dropped), runs the handler with that session, commits;
3. acknowledges only after the commit;
4. on a transient failure publishes a copy to the retry tier of its attempt
   (confirmed) and then acknowledges the original; after the last tier, or on
   any other failure, rejects it to the DLQ.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from aio_pika import IncomingMessage
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from aiormq.abc import DeliveredMessage
from faststream.rabbit import RabbitBroker
from faststream.rabbit.message import RabbitMessage
from opentelemetry import context as otel_context
from opentelemetry import trace
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from service_kit.context import request_id_var, sane_request_id
from service_kit.db import Database
from service_kit.messaging.envelope import (
    HEADER_RETRY_ATTEMPT,
    EventEnvelope,
    InvalidEnvelope,
    extract_trace_context,
)
from service_kit.messaging.events import Event, event_key
from service_kit.messaging.failures import PermanentError, is_transient
from service_kit.messaging.inbox import claim_message
from service_kit.messaging.topology import QueueNames, QueueSpec, topic_matches

log = logging.getLogger(__name__)
tracer = trace.get_tracer("service_kit.messaging")

Outcome = Literal["ok", "duplicate", "retried", "requeued", "dead_lettered"]

MESSAGES_HANDLED = Counter(
    "messages_handled_total",
    "Messages handled by queue, event type and outcome.",
    ["queue", "type", "outcome"],
)
MESSAGE_DURATION = Histogram(
    "message_handle_duration_seconds",
    "Time to handle one message, commit included.",
    ["queue", "type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

M = TypeVar("M", bound=BaseModel)
# Covariant: a handler of a common reader (results' UserChangedV1) serves
# each of its per-type subclasses.
M_co = TypeVar("M_co", bound=BaseModel, covariant=True)
E = TypeVar("E", bound=Event)
_OTHER_TYPE = "<other>"


@dataclass(frozen=True, slots=True)
class ReceivedEvent(Generic[M_co]):
    """An event handed to a handler: the envelope, its validated data, the attempt."""

    envelope: EventEnvelope
    data: M_co
    # 0 on the first delivery; n on the n-th pass through a retry tier.
    attempt: int


EventHandler = Callable[[ReceivedEvent[M], AsyncSession], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _Route:
    model: type[BaseModel]
    handler: EventHandler[Any]


class UnknownEvent(ValueError):
    """No handler is registered for this (type, version)."""


async def _settle(settlement: Awaitable[None]) -> None:
    try:
        await settlement
    except (AMQPError, ChannelInvalidStateError) as exc:
        # The channel is gone: the broker redelivers the message to someone
        # else, and the inbox drops it if we had already committed its effects.
        log.warning("could not settle message, it will be redelivered: %r", exc)


def _attempt_of(raw: IncomingMessage) -> int:
    value = (raw.headers or {}).get(HEADER_RETRY_ATTEMPT, 0)
    return value if isinstance(value, int) and value >= 0 else 0


class EventConsumer:
    """The handlers of one queue; created by :meth:`EventBroker.consumer`."""

    def __init__(
        self,
        *,
        broker: RabbitBroker,
        spec: QueueSpec,
        names: QueueNames,
        db: Database,
        schema: str,
        name: str,
        retry_publish_timeout_seconds: float = 10.0,
    ) -> None:
        self.spec = spec
        self.names = names
        self.name = name
        self._broker = broker
        self._db = db
        self._schema = schema
        self._routes: dict[tuple[str, int], _Route] = {}
        self._types: set[str] = set()
        self._retry_timeout = retry_publish_timeout_seconds

    def handler(self, model: type[E]) -> Callable[[EventHandler[E]], EventHandler[E]]:
        """Registers ``fn(event, session)`` for ``model``'s (type, version); other versions DLQ.

        ``data`` is validated against ``model``. Raises ``ValueError`` for a
        second handler of the same (type, version), and for a model whose
        routing key the queue is not bound by (the handler would never run).
        """
        event_type, version = event_key(model)
        if not any(topic_matches(b, model.routing_key) for b in self.spec.routing_keys):
            raise ValueError(
                f"{self.spec.name} is not bound by {model.routing_key!r} "
                f"(routing key of {event_type} v{version}): add it to its QueueSpec"
            )

        def register(fn: EventHandler[E]) -> EventHandler[E]:
            key = (event_type, version)
            if key in self._routes:
                raise ValueError(f"{event_type} v{version} already has a handler on {self.name}")
            self._routes[key] = _Route(model, fn)
            self._types.add(event_type)
            # Exported as 0 from the start, so "dead letters growing" and
            # "duplicates dropped" have a series before their first message.
            for outcome in ("ok", "duplicate", "dead_lettered"):
                MESSAGES_HANDLED.labels(self.spec.name, event_type, outcome)
            return fn

        return register

    @property
    def accepted(self) -> frozenset[tuple[str, int]]:
        return frozenset(self._routes)

    async def process(self, message: RabbitMessage) -> Outcome:
        """Handles one delivery and settles it (ack, reject or retry)."""
        raw = message.raw_message
        started = time.perf_counter()
        event_type = raw.type or ""
        try:
            envelope = EventEnvelope.from_body(raw.body)
            event_type = envelope.type
            route = self._routes.get((envelope.type, envelope.version))
            if route is None:
                raise UnknownEvent(f"{envelope.type} v{envelope.version} is not handled here")
            data = route.model.model_validate(envelope.data)
            event = ReceivedEvent(envelope, data, _attempt_of(raw))
        except (InvalidEnvelope, UnknownEvent, ValidationError) as exc:
            log.warning(
                "dead-lettering invalid message %s on %s: %s",
                raw.message_id,
                self.names.work,
                str(exc)[:500],
            )
            await _settle(message.reject(requeue=False))
            return self._record(event_type, "dead_lettered", started)

        request_token = request_id_var.set(sane_request_id(envelope.correlation_id))
        otel_token = otel_context.attach(extract_trace_context(raw.headers or {}))
        try:
            with tracer.start_as_current_span(
                f"{self.spec.name} process",
                kind=trace.SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "rabbitmq",
                    "messaging.destination.name": self.names.work,
                    "messaging.message.id": str(envelope.id),
                    "messaging.operation.type": "process",
                    "event.type": envelope.type,
                },
            ):
                try:
                    outcome = await self._apply(route, event)
                except Exception as exc:
                    outcome = await self._settle_failure(message, event, exc)
                else:
                    await _settle(message.ack())
        finally:
            otel_context.detach(otel_token)
            request_id_var.reset(request_token)
        return self._record(event_type, outcome, started)

    async def _apply(self, route: _Route, event: ReceivedEvent[Any]) -> Outcome:
        async with self._db.transaction() as session:
            if not await claim_message(session, event.envelope.id, self.name, schema=self._schema):
                return "duplicate"
            await route.handler(event, session)
        return "ok"

    async def _settle_failure(
        self, message: RabbitMessage, event: ReceivedEvent[Any], exc: Exception
    ) -> Outcome:
        envelope = event.envelope
        if not is_transient(exc):
            if isinstance(exc, PermanentError):
                log.warning("dead-lettering %s %s: %s", envelope.type, envelope.id, exc)
            else:
                log.error(
                    "dead-lettering %s %s after an error", envelope.type, envelope.id, exc_info=exc
                )
            await _settle(message.reject(requeue=False))
            return "dead_lettered"
        if event.attempt >= len(self.names.retry):
            log.error(
                "dead-lettering %s %s: still failing after %d retries: %r",
                envelope.type,
                envelope.id,
                event.attempt,
                exc,
            )
            await _settle(message.reject(requeue=False))
            return "dead_lettered"
        tier = self.names.retry[event.attempt]
        try:
            await self._publish_retry(message.raw_message, tier, event.attempt + 1)
        except Exception as publish_exc:
            # The copy may not exist: put the original back instead. The
            # queue's delivery limit bounds how often this can happen.
            log.warning("retry publish to %s failed (%r); requeueing", tier, publish_exc)
            await _settle(message.nack(requeue=True))
            return "requeued"
        log.info("retrying %s %s via %s after %r", envelope.type, envelope.id, tier, exc)
        await _settle(message.ack())
        return "retried"

    async def _publish_retry(self, raw: IncomingMessage, queue: str, attempt: int) -> None:
        headers = dict(raw.headers or {})
        headers[HEADER_RETRY_ATTEMPT] = attempt
        confirmation = await self._broker.publish(
            raw.body,
            exchange="",
            routing_key=queue,
            headers=headers,
            message_id=raw.message_id,
            message_type=raw.type,
            content_type=raw.content_type,
            correlation_id=raw.correlation_id,
            timestamp=raw.timestamp,
            persist=True,
            # mandatory: a tier queue that went missing must fail loudly, not
            # swallow the message (the broker returns it instead of an ack).
            mandatory=True,
            timeout=self._retry_timeout,
        )
        if confirmation is None or isinstance(confirmation, DeliveredMessage):
            raise RuntimeError(f"retry tier {queue} did not confirm: {confirmation!r}")

    def _record(self, event_type: str, outcome: Outcome, started: float) -> Outcome:
        # Only registered types become label values: a stray type must not
        # mint a new time series per message.
        label = event_type if event_type in self._types else _OTHER_TYPE
        MESSAGES_HANDLED.labels(self.spec.name, label, outcome).inc()
        MESSAGE_DURATION.labels(self.spec.name, label).observe(time.perf_counter() - started)
        return outcome
