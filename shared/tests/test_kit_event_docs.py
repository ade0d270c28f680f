"""Event docs from a catalog: the AsyncAPI document, the events page section, the drift check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from kit_events import CustomRouted, Probe, ProbeV2
from pydantic import Field
from service_kit.messaging import Event, EventCatalog, QueueSpec, Subscription, example_payload
from service_kit.messaging.asyncapi import asyncapi_document
from service_kit.messaging.docs import (
    ASYNCAPI_DIR,
    EVENTS_PAGE,
    REGENERATE_COMMAND,
    main,
    stale_event_docs,
    stale_message,
    write_event_docs,
)
from service_kit.messaging.events_page import anchor, begin_marker, end_marker, with_section
from test_kit_events import Customer, Line, OrderPlaced


class OrderShipped(Event):
    """An order left the warehouse."""

    event_type = "order.shipped"
    event_version = 1
    routing_key = "shop.order.shipped"
    producer = "shop"

    order_id: str = Field(description="The order.", examples=["o-1"])


class RefundRequested(Event):
    """A command the shop defines, sent by the till."""

    event_type = "refund.requested"
    event_version = 1
    producer = "till"

    amount: str = Field(description="Decimal string.", examples=["9.99"])


CATALOG = EventCatalog(
    service="shop",
    description="The shop's events.",
    publishes=(OrderPlaced, OrderShipped),
    defines=(RefundRequested,),
    consumes=(
        Subscription(QueueSpec("shop.probes", ("kit.probe",)), (Probe, ProbeV2)),
        Subscription(QueueSpec("shop.routed", ("kit.custom",)), (CustomRouted,)),
        Subscription(QueueSpec("shop.refunds", ("refund.requested",)), (RefundRequested,)),
    ),
)


def _resolve(document: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("%20", " ")]
    assert isinstance(node, dict)
    return node


def test_asyncapi_has_a_channel_operation_and_typed_message_per_published_and_consumed_event() -> (
    None
):
    document = yaml.safe_load(asyncapi_document(CATALOG))

    assert document["asyncapi"] == "3.0.0"
    expected = {
        "order.placed.v3": ("order.placed", "send", OrderPlaced),
        "order.shipped.v1": ("shop.order.shipped", "send", OrderShipped),
        "shop.probes:kit.probe.v1": ("kit.probe", "receive", Probe),
        "shop.probes:kit.probe.v2": ("kit.probe", "receive", ProbeV2),
        "shop.routed:kit.routed.v1": ("kit.custom", "receive", CustomRouted),
        "shop.refunds:refund.requested.v1": ("refund.requested", "receive", RefundRequested),
    }
    assert set(document["channels"]) == set(expected)
    for name, (address, action, event) in expected.items():
        channel = document["channels"][name]
        assert channel["address"] == address
        operation = document["operations"][name]
        assert operation["action"] == action
        [message_ref] = channel["messages"].values()
        message = _resolve(document, message_ref["$ref"])
        envelope = _resolve(document, message["payload"]["$ref"])
        assert envelope["properties"]["type"]["const"] == event.event_type
        assert envelope["properties"]["version"]["const"] == event.event_version
        assert envelope["properties"]["producer"]["const"] == event.producer
        assert envelope["examples"][0]["data"] == example_payload(event)
        data = _resolve(document, envelope["properties"]["data"]["$ref"])
        assert set(data["properties"]) == set(event.model_fields)
        assert all(p.get("description") for p in data["properties"].values())
    assert {"Customer", "Line"} <= set(document["components"]["schemas"])
    assert OrderShipped.model_validate(example_payload(OrderShipped)).order_id == "o-1"
    # Published as the relay does: persistent, not mandatory.
    binding = document["operations"]["order.placed.v3"]["bindings"]["amqp"]
    assert (binding["deliveryMode"], binding["mandatory"]) == (2, False)


def test_asyncapi_document_is_the_same_on_every_run() -> None:
    assert asyncapi_document(CATALOG) == asyncapi_document(CATALOG)


def test_events_section_documents_fields_nested_models_examples_and_queues() -> None:
    page = with_section("# Events\n\nHand-written.\n", CATALOG)

    assert page.startswith("# Events\n\nHand-written.\n\n" + begin_marker("shop"))
    assert page.endswith(end_marker("shop") + "\n")
    for event in CATALOG.documented:
        assert f"#### `{event.event_type}` v{event.event_version}" in page
    assert "A second paragraph with details." in page
    assert "- Routing key: `shop.order.shipped`; producer: `shop`" in page
    assert "- Routing key: `refund.requested`; producer: `till`" in page
    assert f"`{Customer.__name__}`:" in page and f"`{Line.__name__}`:" in page
    assert "| `lines` | array of object (Line) | What was ordered. |" in page
    assert "| `note` | string or null | Free text. |" in page
    assert json.dumps(example_payload(OrderPlaced), indent=2) in page
    assert f"[`kit.probe` v2](#{anchor(ProbeV2)}) | kit |" in page
    assert anchor(ProbeV2) == "kitprobe-v2"


def test_regenerating_replaces_only_the_services_section() -> None:
    other = f"{begin_marker('other')}\nother's\n{end_marker('other')}\n"
    page = with_section(f"# Events\n\n{other}", CATALOG)
    stale = page.replace("An order left the warehouse.", "Outdated.")

    assert with_section(stale + "\nHand-written tail.\n", CATALOG) == (
        page + "\nHand-written tail.\n"
    )
    assert other in page


def test_drift_is_reported_until_the_documents_are_regenerated(tmp_path: Path) -> None:
    (tmp_path / EVENTS_PAGE).parent.mkdir(parents=True)
    (tmp_path / EVENTS_PAGE).write_text("# Events\n\nThe envelope.\n", encoding="utf-8")
    asyncapi = tmp_path / ASYNCAPI_DIR / "shop.yaml"

    assert set(stale_event_docs(CATALOG, tmp_path)) == {tmp_path / EVENTS_PAGE, asyncapi}
    assert main(["--check", "--root", str(tmp_path), "test_kit_event_docs:CATALOG"]) == 1

    assert main(["--root", str(tmp_path), "test_kit_event_docs:CATALOG"]) == 0
    assert stale_event_docs(CATALOG, tmp_path) == []
    assert "The envelope." in (tmp_path / EVENTS_PAGE).read_text(encoding="utf-8")
    assert write_event_docs(CATALOG, tmp_path) == []

    asyncapi.write_text(asyncapi.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    assert stale_event_docs(CATALOG, tmp_path) == [asyncapi]
    assert REGENERATE_COMMAND in stale_message([asyncapi])
