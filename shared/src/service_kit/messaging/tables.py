"""The outbox, inbox and job lease tables, defined once and placed in each service's schema.

A service adds them to its own ``MetaData`` with :func:`kit_tables`, so its
Alembic autogenerate creates them in its schema next to its business tables.
At run time the kit builds the same definitions per schema (cached) for its
own statements, so the two can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from service_kit.db import checked_schema

__all__ = ["KitTables", "checked_schema", "kit_tables", "tables_for"]


@dataclass(frozen=True, slots=True)
class KitTables:
    outbox: Table
    inbox: Table
    job_leases: Table


def _define_outbox(metadata: MetaData, schema: str) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("id", UUID(as_uuid=True), primary_key=True, comment="Message id of the event."),
        Column("type", Text, nullable=False, comment="Event type, e.g. user.created."),
        Column("version", Integer, nullable=False, comment="Schema version of data."),
        Column("routing_key", Text, nullable=False),
        Column("producer", Text, nullable=False),
        Column("payload", JSONB, nullable=False, comment="The event's data object."),
        Column(
            "headers",
            JSONB,
            nullable=False,
            server_default=text("'{}'::jsonb"),
            comment="Request id and W3C trace context captured at write time.",
        ),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column(
            "created_at",
            DateTime(timezone=True),
            nullable=False,
            server_default=func.clock_timestamp(),
        ),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("last_error", Text),
        Column("sent_at", DateTime(timezone=True)),
        # The relay's only query path: unsent rows oldest first. Partial, so it
        # stays small however many sent rows pile up before the purge.
        Index(
            "ix_outbox_unsent_created_at",
            "created_at",
            postgresql_where=text("sent_at IS NULL"),
        ),
        Index("ix_outbox_sent_at", "sent_at", postgresql_where=text("sent_at IS NOT NULL")),
        schema=checked_schema(schema),
        comment="Transactional outbox: events written with the business change, relayed later.",
    )


def _define_inbox(metadata: MetaData, schema: str) -> Table:
    return Table(
        "inbox",
        metadata,
        Column("message_id", UUID(as_uuid=True), nullable=False),
        Column("consumer", Text, nullable=False),
        Column(
            "received_at",
            DateTime(timezone=True),
            nullable=False,
            server_default=func.now(),
        ),
        PrimaryKeyConstraint("message_id", "consumer", name="pk_inbox"),
        Index("ix_inbox_received_at", "received_at"),
        schema=checked_schema(schema),
        comment="Inbox: ids of messages a consumer has applied, for idempotency.",
    )


def _define_job_leases(metadata: MetaData, schema: str) -> Table:
    return Table(
        "job_leases",
        metadata,
        Column("name", Text, primary_key=True, comment="The periodic job's name."),
        Column("holder", Text, nullable=False, comment="Replica that holds or last held it."),
        Column(
            "expires_at",
            DateTime(timezone=True),
            nullable=False,
            comment="The holder's claim ends here unless renewed.",
        ),
        Column(
            "next_run_at",
            DateTime(timezone=True),
            nullable=False,
            comment="No replica claims the job before this (set when a run ends).",
        ),
        schema=checked_schema(schema),
        comment="Leases of periodic jobs that run once across replicas (service_kit.jobs).",
    )


def kit_tables(metadata: MetaData, schema: str) -> KitTables:
    """Adds the outbox, inbox and job lease tables in ``schema`` to a service's metadata."""
    return KitTables(
        _define_outbox(metadata, schema),
        _define_inbox(metadata, schema),
        _define_job_leases(metadata, schema),
    )


@cache
def tables_for(schema: str) -> KitTables:
    """The kit's own copy of the tables in ``schema``, for its statements at run time."""
    return kit_tables(MetaData(), schema)
