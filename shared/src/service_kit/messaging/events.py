"""Self-describing events: a payload model that knows its type, version, route and producer.

A producer declares each event type and version once, as a subclass of :class:`Event`::

    class UserCreatedV1(Event):
        \"\"\"A user was created (by an admin, an import, or the bootstrap).\"\"\"

        event_type = "user.created"
        event_version = 1
        producer = "auth"

        id: uuid.UUID = Field(description="User id.", examples=["0b7c8f0e-..."])

and everything else reads it from the class: ``add_event(session, event)``
writes the type, version, routing key and producer into the outbox, a consumer
registers ``consumer.handler(UserCreatedV1)``, and the docs generator
(:mod:`service_kit.messaging.docs`) takes the description from the docstring
and the payload's documentation and example from the fields' ``description``
and ``examples`` (give examples in their JSON form: strings for UUIDs, times
and decimals).

The declaration is checked when the class is defined, so a bad one fails on
import, in every test run, instead of on the wire or in the docs. The class
attributes are not payload fields: they never appear in ``data``, and no field
may take one of their names (auth's user payload has its own ``version``,
hence ``event_version``).

A class without ``event_type`` is a base for events (shared fields, a shared
``producer``); it is checked through its concrete subclasses.
"""

from __future__ import annotations

import copy
import inspect
import re
import types
import typing
from functools import cache
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from service_kit.db import checked_schema
from service_kit.messaging.envelope import EVENT_TYPE_PATTERN

_EVENT_TYPE = re.compile(EVENT_TYPE_PATTERN)
# A route is published to, never bound: no topic wildcards.
_ROUTING_KEY = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$")
RESERVED_NAMES = frozenset({"event_type", "event_version", "routing_key", "producer"})


class InvalidEventDeclaration(TypeError):
    """An :class:`Event` subclass is declared wrongly (raised when the class is defined)."""


class Event(BaseModel):
    """The payload (``data``) of one event type and version, and what describes it."""

    # Tolerant reader: a producer may add optional fields before consumers know them.
    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    """``<aggregate>.<change>``, e.g. ``user.created``; unset on abstract bases."""
    event_version: ClassVar[int]
    """Schema version of this payload for ``event_type``, from 1."""
    routing_key: ClassVar[str]
    """Routing key on the events exchange; the event type unless declared."""
    producer: ClassVar[str]
    """Service that writes it to its outbox; also the Postgres schema of that outbox."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if not is_concrete(cls):
            return
        if "routing_key" not in cls.__dict__ and _inherits_default_route(cls):
            cls.routing_key = cls.event_type
        problems = _declaration_problems(cls)
        if problems:
            raise InvalidEventDeclaration(
                f"{cls.__module__}.{cls.__qualname__}: " + "; ".join(problems)
            )


def is_concrete(model: type[Event]) -> bool:
    """True for a publishable event (it has an ``event_type``), false for a base."""
    return isinstance(getattr(model, "event_type", None), str)


def event_key(model: type[Event]) -> tuple[str, int]:
    """(type, version): what a consumer routes on."""
    if not is_concrete(model):
        raise TypeError(f"{model.__qualname__} declares no event_type: it is a base, not an event")
    return model.event_type, model.event_version


def event_description(model: type[Event]) -> str:
    """The event's docstring, dedented (its first paragraph is the summary)."""
    return inspect.cleandoc(model.__dict__.get("__doc__") or "")


def example_payload(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON ``data`` of ``model`` built from its fields' first examples.

    A field without examples whose type is a model (or a list or optional of
    one) gets that model's example (a list gets one item).
    """
    return copy.deepcopy(_example(model))


@cache
def _example(model: type[BaseModel]) -> dict[str, Any]:
    raw = _raw_example(model)
    # Validated and dumped as add_event would write it (JSON mode).
    return model.model_validate(raw).model_dump(mode="json")


def _raw_example(model: type[BaseModel]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if field.examples:
            raw[name] = field.examples[0]
            continue
        nested, is_list = _nested_model(field.annotation)
        if nested is None:
            raise InvalidEventDeclaration(f"field {model.__qualname__}.{name} has no example")
        item = _raw_example(nested)
        raw[name] = [item] if is_list else item
    return raw


def _nested_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model inside ``X``, ``X | None`` or ``list[X]``, and whether it is a list."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _nested_model(args[0])
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            nested, is_list = _nested_model(arg)
            if nested is not None:
                return nested, is_list
        return None, False
    if origin in (list, tuple, set, frozenset) and args:
        nested, _ = _nested_model(args[0])
        return nested, nested is not None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    return None, False


def nested_models(model: type[BaseModel]) -> list[type[BaseModel]]:
    """The models used by ``model``'s fields, depth first, each once (not ``model``)."""
    found: list[type[BaseModel]] = []

    def visit(current: type[BaseModel]) -> None:
        for field in current.model_fields.values():
            nested, _ = _nested_model(field.annotation)
            if nested is not None and nested is not model and nested not in found:
                found.append(nested)
                visit(nested)

    visit(model)
    return found


def _inherits_default_route(model: type[Event]) -> bool:
    # An inherited routing key that was its parent's own type was a default:
    # the subclass routes by its own type. A declared other key is inherited.
    for base in model.__mro__[1:]:
        if "routing_key" in base.__dict__:
            return bool(base.__dict__["routing_key"] == base.__dict__.get("event_type"))
    return True


def _declaration_problems(model: type[Event]) -> list[str]:
    problems: list[str] = []
    if not _EVENT_TYPE.match(model.event_type):
        problems.append(f"event_type {model.event_type!r} must look like 'user.created'")
    version = getattr(model, "event_version", None)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        problems.append(f"event_version must be an integer from 1, not {version!r}")
    if not _ROUTING_KEY.match(str(getattr(model, "routing_key", ""))):
        problems.append(f"routing_key {model.routing_key!r} must be dotted words, no wildcards")
    producer = getattr(model, "producer", None)
    try:
        # The producer names its outbox's schema (add_event), which is spliced into SQL.
        checked_schema(producer if isinstance(producer, str) else "")
    except ValueError as exc:
        problems.append(f"producer {producer!r} must be a service name: {exc}")
    if not event_description(model):
        problems.append("a docstring is needed: it is the event's description")
    if not model.__pydantic_complete__:
        problems.append("the model is incomplete (define the models its fields use before it)")
        return problems
    for current in (model, *nested_models(model)):
        for name, field in current.model_fields.items():
            where = f"field {current.__name__}.{name}"
            if current is model and name in RESERVED_NAMES:
                problems.append(f"{where} takes a name reserved for the event's class attributes")
            if not (field.description or "").strip():
                problems.append(f"{where} needs a description")
            if not field.examples and _nested_model(field.annotation)[0] is None:
                problems.append(f"{where} needs examples=[...]")
    if not problems:
        try:
            _example(model)
        except ValidationError as exc:
            problems.append(f"the example built from the fields' examples is invalid: {exc}")
    return problems
