"""The event envelope and its wire format (documented in docs/events.md).

Body: UTF-8 JSON ``{"id", "type", "version", "occurred_at", "producer",
"correlation_id", "data"}``; the body is authoritative. AMQP properties repeat
what brokers and tools look at without parsing JSON: ``message_id``, ``type``,
``content_type``, ``correlation_id``, ``app_id``, ``timestamp``, persistent
delivery, and headers ``x-schema-version``, ``x-request-id``, ``traceparent``
and ``tracestate``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from aio_pika import DeliveryMode, Message
from opentelemetry import context as otel_context
from opentelemetry import propagate
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

# Re-exported: the outbox captures it with each row, the relay with each message.
from service_kit.tracing import trace_headers as trace_headers

CONTENT_TYPE = "application/json"
HEADER_SCHEMA_VERSION = "x-schema-version"
HEADER_REQUEST_ID = "x-request-id"
HEADER_TRACEPARENT = "traceparent"
HEADER_TRACESTATE = "tracestate"
# Set by the consumer when it sends a message to a retry tier (1 = first retry).
HEADER_RETRY_ATTEMPT = "x-retry-attempt"

EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"


class InvalidEnvelope(ValueError):
    """The body is not a valid event envelope (not JSON, missing fields, bad types)."""


class EventEnvelope(BaseModel):
    """One event as it travels between services."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: uuid.UUID = Field(description="Unique message id; consumers deduplicate on it.")
    type: str = Field(
        pattern=EVENT_TYPE_PATTERN,
        description="Event type and routing key, e.g. `user.created`.",
    )
    version: int = Field(ge=1, description="Schema version of `data` for this type.")
    occurred_at: AwareDatetime = Field(description="When the change happened (UTC).")
    producer: str = Field(min_length=1, description="Service that produced the event.")
    correlation_id: str | None = Field(
        None, description="Request id of the request that caused the event."
    )
    data: dict[str, Any] = Field(description="The versioned payload of this event type.")

    def to_body(self) -> bytes:
        return orjson.dumps(
            {
                "id": str(self.id),
                "type": self.type,
                "version": self.version,
                "occurred_at": self.occurred_at.astimezone(UTC).isoformat(),
                "producer": self.producer,
                "correlation_id": self.correlation_id,
                "data": self.data,
            }
        )

    @classmethod
    def from_body(cls, body: bytes) -> EventEnvelope:
        try:
            return cls.model_validate_json(body)
        except ValidationError as exc:
            raise InvalidEnvelope(str(exc)) from exc


def extract_trace_context(headers: Mapping[str, Any]) -> otel_context.Context:
    carrier = {
        k: str(v) for k, v in headers.items() if k in (HEADER_TRACEPARENT, HEADER_TRACESTATE)
    }
    return propagate.extract(carrier)


def new_message_id() -> uuid.UUID:
    return uuid.uuid4()


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_amqp_message(envelope: EventEnvelope, headers: Mapping[str, str]) -> Message:
    """The persistent AMQP message for an envelope; ``headers`` carry trace context."""
    amqp_headers: dict[str, Any] = {HEADER_SCHEMA_VERSION: envelope.version}
    for name in (HEADER_TRACEPARENT, HEADER_TRACESTATE):
        if headers.get(name):
            amqp_headers[name] = headers[name]
    if envelope.correlation_id:
        amqp_headers[HEADER_REQUEST_ID] = envelope.correlation_id
    return Message(
        envelope.to_body(),
        message_id=str(envelope.id),
        type=envelope.type,
        content_type=CONTENT_TYPE,
        delivery_mode=DeliveryMode.PERSISTENT,
        correlation_id=envelope.correlation_id,
        app_id=envelope.producer,
        timestamp=envelope.occurred_at,
        headers=amqp_headers,
    )
