"""Event models: checked when declared, examples built from their fields, registered by model."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from kit_events import CustomRouted, Probe, ProbeV2
from kit_support import SCHEMA
from pydantic import BaseModel, Field, create_model
from service_kit.db import Database
from service_kit.messaging import (
    Event,
    EventBroker,
    EventCatalog,
    EventConsumer,
    InvalidEventDeclaration,
    QueueSpec,
    ReceivedEvent,
    Subscription,
    example_payload,
)
from service_kit.messaging.events import event_description
from service_kit.messaging.topology import topic_matches
from service_kit.settings import KitSettings
from sqlalchemy.ext.asyncio import AsyncSession


class Line(BaseModel):
    """A nested model: its fields need descriptions and examples too."""

    sku: str = Field(description="Stock keeping unit.", examples=["SKU-1"])
    quantity: int = Field(ge=1, description="How many.", examples=[2])


class Customer(BaseModel):
    """Another nested model."""

    name: str = Field(description="Who.", examples=["Ann Lee"])


class OrderPlaced(Event):
    """An order was placed.

    A second paragraph with details.
    """

    event_type = "order.placed"
    event_version = 3
    producer = "shop"

    order_id: uuid.UUID = Field(
        description="The order.", examples=["5d0c6c1e-4a8e-4b49-9f0e-0a6f1c3a2f11"]
    )
    placed_at: datetime = Field(description="When.", examples=["2026-11-22T10:15:30Z"])
    customer: Customer = Field(description="Who ordered.")
    lines: list[Line] = Field(description="What was ordered.")
    note: str | None = Field(None, description="Free text.", examples=[None])


def _declare(**namespace: Any) -> type[Event]:
    """Defines an Event subclass from a class namespace (as a class statement would)."""
    annotations = namespace.pop("__annotations__", {})
    body = {"__doc__": "An event.", "__annotations__": annotations, **namespace}
    return type("Declared", (Event,), body)


_VALID: dict[str, Any] = {
    "event_type": "kit.declared",
    "event_version": 1,
    "producer": "kit",
    "__annotations__": {"n": int},
    "n": Field(description="A number.", examples=[1]),
}


def test_a_valid_declaration_defines_type_version_producer_and_default_routing_key() -> None:
    declared = _declare(**_VALID)
    assert (declared.event_type, declared.event_version, declared.producer) == (
        "kit.declared", 1, "kit",
    )  # fmt: skip
    assert declared.routing_key == "kit.declared"
    assert CustomRouted.routing_key == "kit.custom"
    assert "event_type" not in declared.model_fields
    assert declared(n=1).model_dump() == {"n": 1}


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"event_type": "OrderPlaced"}, "event_type"),
        ({"event_type": "order"}, "event_type"),
        ({"event_version": 0}, "event_version"),
        ({"event_version": True}, "event_version"),
        ({"routing_key": "order.*"}, "routing_key"),
        ({"producer": "the shop"}, "producer"),
        ({"__doc__": None}, "docstring"),
        ({"n": Field(examples=[1])}, "description"),
        ({"n": Field(description="A number.")}, "examples"),
        ({"n": Field(description="A number.", examples=["not a number"])}, "example"),
    ],
)
def test_a_bad_declaration_fails_when_the_class_is_defined(
    change: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(InvalidEventDeclaration, match=complaint):
        _declare(**{**_VALID, **change})


def test_a_field_may_not_take_the_name_of_a_class_attribute() -> None:
    class Versioned(Event):
        """A payload field of its own named `version` is fine (auth's users have one)."""

        event_type = "kit.versioned"
        event_version = 1
        producer = "kit"
        version: int = Field(description="The record's version.", examples=[4])

    assert Versioned(version=4).version == 4 and Versioned.event_version == 1
    with pytest.raises(InvalidEventDeclaration, match="reserved"):
        _declare(
            **{**_VALID, "__annotations__": {"n": int, "routing_key": str}},
            routing_key=Field(description="Clashes.", examples=["kit.clash"]),
        )


def test_a_nested_model_field_without_description_or_example_fails_the_event() -> None:
    bare = create_model("Bare", sku=(str, ...))

    with pytest.raises(InvalidEventDeclaration, match=r"Bare\.sku needs a description"):
        _declare(**{**_VALID, "__annotations__": {"n": bare}, "n": Field(description="A line.")})


def test_a_base_without_event_type_is_not_checked_until_a_concrete_subclass() -> None:
    class Base(Event):
        producer = "kit"
        n: int = Field(description="A number.")

    with pytest.raises(InvalidEventDeclaration, match=r"Concrete\.n needs examples"):
        type("Concrete", (Base,), {"__doc__": "Concrete.", "event_type": "kit.concrete",
                                   "event_version": 1})  # fmt: skip


def test_example_payload_is_built_from_field_examples_with_nested_models_and_lists() -> None:
    example = example_payload(OrderPlaced)

    assert example == {
        "order_id": "5d0c6c1e-4a8e-4b49-9f0e-0a6f1c3a2f11",
        "placed_at": "2026-11-22T10:15:30Z",
        "customer": {"name": "Ann Lee"},
        "lines": [{"sku": "SKU-1", "quantity": 2}],
        "note": None,
    }
    order = OrderPlaced.model_validate(example)
    assert order.model_dump(mode="json") == example
    assert (order.customer.name, order.lines[0].sku, order.lines[0].quantity) == (
        "Ann Lee", "SKU-1", 2,
    )  # fmt: skip
    assert order.placed_at.tzinfo is not None and order.order_id.version == 4
    example["lines"].clear()  # a copy: the next caller still gets the whole example
    assert example_payload(OrderPlaced)["lines"]
    for event in (Probe, ProbeV2, CustomRouted):
        event.model_validate(example_payload(event))


def test_the_description_is_the_docstring() -> None:
    description = event_description(OrderPlaced)
    assert description == "An order was placed.\n\nA second paragraph with details."


def test_a_subclass_keeps_a_declared_routing_key_and_defaults_its_own_otherwise() -> None:
    class RoutedV2(CustomRouted):
        """Version 2 keeps the route of version 1."""

        event_version = 2

    class Renamed(Probe):
        """Another type routes by its own type."""

        event_type = "kit.renamed"

    assert RoutedV2.routing_key == "kit.custom"
    assert Renamed.routing_key == "kit.renamed"


@pytest.mark.parametrize(
    ("binding", "key", "matches"),
    [
        ("user.created", "user.created", True),
        ("user.*", "user.created", True),
        ("user.*", "user.created.v2", False),
        ("user.#", "user", True),
        ("#", "results.marks.import_chunk", True),
        ("*.marks.#", "results.marks.import_chunk", True),
        ("user.created", "user.updated", False),
    ],
)
def test_topic_bindings_match_routing_keys_as_rabbitmq_does(
    binding: str, key: str, matches: bool
) -> None:
    assert topic_matches(binding, key) is matches


@pytest.fixture
async def probe_consumer(settings: KitSettings) -> AsyncIterator[EventConsumer]:
    db = Database(settings)  # never connects: registration only
    try:
        yield EventBroker(settings).consumer(
            QueueSpec("probes", ("kit.probe", "kit.#")), db=db, schema=SCHEMA
        )
    finally:
        await db.dispose()


async def _noop(event: ReceivedEvent[Event], session: AsyncSession) -> None:
    del event, session


async def test_handlers_register_by_model_and_a_second_for_the_same_version_is_refused(
    probe_consumer: EventConsumer,
) -> None:
    probe_consumer.handler(Probe)(_noop)
    probe_consumer.handler(ProbeV2)(_noop)
    probe_consumer.handler(CustomRouted)(_noop)

    assert probe_consumer.accepted == {("kit.probe", 1), ("kit.probe", 2), ("kit.routed", 1)}
    with pytest.raises(ValueError, match="already has a handler"):
        probe_consumer.handler(Probe)(_noop)


async def test_a_model_the_queue_is_not_bound_for_or_a_base_cannot_be_registered(
    probe_consumer: EventConsumer,
) -> None:
    with pytest.raises(ValueError, match="not bound"):
        probe_consumer.handler(OrderPlaced)(_noop)
    with pytest.raises(TypeError):
        probe_consumer.handler(Event)(_noop)


def test_a_catalog_refuses_contradictions() -> None:
    with pytest.raises(ValueError, match="produced by kit"):
        EventCatalog(service="shop", publishes=(Probe,))
    with pytest.raises(ValueError, match="declared twice"):
        EventCatalog(service="shop", publishes=(OrderPlaced, OrderPlaced))
    with pytest.raises(ValueError, match="not bound"):
        EventCatalog(
            service="shop",
            publishes=(),
            consumes=(Subscription(QueueSpec("shop.probes", ("kit.other",)), (Probe,)),),
        )
