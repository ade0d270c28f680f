"""The notifier's event contracts: generated docs current, examples valid, and the
delivery commands consumed from the queues they are published to."""

from __future__ import annotations

from pathlib import Path

from notifier_service.messaging.catalog import (
    EMAIL_DELIVERIES_QUEUE,
    EVENTS,
    WEBHOOK_DELIVERIES_QUEUE,
)
from notifier_service.messaging.deliveries import email_queue, webhook_queue
from notifier_service.settings import NotifierSettings
from service_kit.messaging.docs import stale_event_docs, stale_message
from service_kit.messaging.events import event_key, example_payload
from service_kit.messaging.topology import topic_matches

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_committed_event_docs_are_what_the_catalog_generates() -> None:
    stale = stale_event_docs(EVENTS, REPO_ROOT)
    assert not stale, stale_message(stale)


def test_every_example_payload_is_valid_for_its_model() -> None:
    consumed = [e for s in EVENTS.consumes for e in s.events]
    for event in (*EVENTS.documented, *consumed):
        example = example_payload(event)
        assert event.model_validate(example).model_dump(mode="json") == example


def test_every_command_the_notifier_publishes_has_exactly_one_queue_of_its_own() -> None:
    """Deliveries are commands to itself, one queue per channel: a failing channel
    never holds up another, and no command is handled twice."""
    for command in EVENTS.publishes:
        queues = [
            s.queue.name
            for s in EVENTS.consumes
            if any(event_key(e) == event_key(command) for e in s.events)
            or any(topic_matches(b, command.routing_key) for b in s.queue.routing_keys)
        ]
        assert len(queues) == 1, (command.event_type, queues)


def test_the_catalogs_delivery_queues_are_the_ones_the_consumers_bind() -> None:
    settings = NotifierSettings(environment="test")
    for documented, consumed in (
        (EMAIL_DELIVERIES_QUEUE, email_queue(settings)),
        (WEBHOOK_DELIVERIES_QUEUE, webhook_queue(settings)),
    ):
        assert documented.name == consumed.name
        assert tuple(documented.routing_keys) == tuple(consumed.routing_keys)
