"""Events between services: event models, envelope, topology, outbox, relay, inbox, consumers."""

from service_kit.messaging.broker import EventBroker
from service_kit.messaging.catalog import EventCatalog, Subscription
from service_kit.messaging.consumer import EventConsumer, EventHandler, Outcome, ReceivedEvent
from service_kit.messaging.envelope import EventEnvelope, InvalidEnvelope
from service_kit.messaging.events import Event, InvalidEventDeclaration, example_payload
from service_kit.messaging.failures import PermanentError, TransientError, is_transient
from service_kit.messaging.inbox import claim_message, purge_inbox
from service_kit.messaging.outbox import add_event, purge_sent_events, unsent_count
from service_kit.messaging.relay import OutboxRelay
from service_kit.messaging.tables import KitTables, kit_tables
from service_kit.messaging.topology import (
    QueueNames,
    QueueSpec,
    declare_consumer_queues,
    declare_events_exchange,
    queue_names,
)

__all__ = [
    "Event",
    "EventBroker",
    "EventCatalog",
    "EventConsumer",
    "EventEnvelope",
    "EventHandler",
    "InvalidEnvelope",
    "InvalidEventDeclaration",
    "KitTables",
    "OutboxRelay",
    "Outcome",
    "PermanentError",
    "QueueNames",
    "QueueSpec",
    "ReceivedEvent",
    "Subscription",
    "TransientError",
    "add_event",
    "claim_message",
    "declare_consumer_queues",
    "declare_events_exchange",
    "example_payload",
    "is_transient",
    "kit_tables",
    "purge_inbox",
    "purge_sent_events",
    "queue_names",
    "unsent_count",
]
