"""A service's event catalog: what it publishes, defines and consumes, declared in one place.

The docs generator (:mod:`service_kit.messaging.docs`) writes the service's
AsyncAPI document and its section of docs/events.md from it, and its drift
test compares them with the committed files. The catalog is checked when it is
built, so a contradiction fails on import like a bad event declaration.
"""

from __future__ import annotations

from dataclasses import dataclass

from service_kit.messaging.events import Event, event_key
from service_kit.messaging.topology import QueueSpec, topic_matches


@dataclass(frozen=True, slots=True)
class Subscription:
    """One queue of the service and the event models its handlers accept."""

    queue: QueueSpec
    events: tuple[type[Event], ...]


@dataclass(frozen=True, slots=True)
class EventCatalog:
    """Every event a service writes to its outbox or reads from its queues."""

    service: str
    publishes: tuple[type[Event], ...]
    consumes: tuple[Subscription, ...] = ()
    # Contracts the service owns although another service produces them
    # (results owns bulk's marks.import_chunk command, being its only
    # addressee): documented in full in this service's section.
    defines: tuple[type[Event], ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        problems: list[str] = []
        for event in self.publishes:
            if event.producer != self.service:
                problems.append(f"{_name(event)} is produced by {event.producer}, not published")
        for event in self.defines:
            if event.producer == self.service:
                problems.append(f"{_name(event)} is produced here: list it in publishes")
        owned = [event_key(e) for e in (*self.publishes, *self.defines)]
        problems += [f"{t} v{v} is declared twice" for t, v in _duplicates(owned)]
        for subscription in self.consumes:
            queue = subscription.queue
            for event in subscription.events:
                if not any(topic_matches(b, event.routing_key) for b in queue.routing_keys):
                    problems.append(f"{queue.name} is not bound by {event.routing_key!r}")
            keys = [event_key(e) for e in subscription.events]
            problems += [f"{queue.name} reads {t} v{v} twice" for t, v in _duplicates(keys)]
        if problems:
            raise ValueError(f"event catalog of {self.service}: " + "; ".join(problems))

    @property
    def documented(self) -> tuple[type[Event], ...]:
        """The events whose contract this service owns, in the order of the docs."""
        return (*self.publishes, *self.defines)


def _name(event: type[Event]) -> str:
    event_type, version = event_key(event)
    return f"{event_type} v{version}"


def _duplicates(keys: list[tuple[str, int]]) -> list[tuple[str, int]]:
    return sorted({key for key in keys if keys.count(key) > 1})
