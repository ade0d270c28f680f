"""Event models the kit's tests publish and consume (producer ``kit``: the tests' schema)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from kit_support import SCHEMA
from pydantic import Field
from service_kit.messaging.events import Event


class Probe(Event):
    """A probe: one number."""

    event_type = "kit.probe"
    event_version = 1
    producer = SCHEMA

    n: int = Field(description="A number the test chooses.", examples=[1])


class ProbeV2(Event):
    """Version 2 of the probe: a number and a mark."""

    event_type = "kit.probe"
    event_version = 2
    producer = SCHEMA

    n: int = Field(description="A number the test chooses.", examples=[1])
    mark: Decimal = Field(description="A mark, sent as a decimal string.", examples=["12.50"])


class CustomRouted(Event):
    """A probe with a routing key of its own."""

    event_type = "kit.routed"
    event_version = 1
    routing_key = "kit.custom"
    producer = SCHEMA

    id: uuid.UUID = Field(description="Some id.", examples=["00000000-0000-0000-0000-000000000007"])
