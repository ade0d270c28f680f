"""Tables of the notifier (schema ``notifier``), as SQLAlchemy Core.

Migration 0001 creates exactly these tables (``tests/test_schema.py`` compares
the two).

- ``users``: the read model of auth's users (names, addresses, active flags),
  fed by ``user.created`` / ``user.updated`` and by lookups in auth.
- ``preferences``: a user's choice of email (API.md); no row means email on.
- ``notifications``: one row per (user, cause) — the unique key that makes a
  cause delivered, redelivered or replayed notify once. ``seq`` orders them
  for the live stream (it is the SSE event id). ``facts`` keeps what the
  email is rendered from, never a token.
- ``deliveries``: one row per notification and outward channel (email,
  webhook): where its delivery stands.
- ``delivery_attempts``: every attempt, with its outcome.
"""

from __future__ import annotations

from service_kit.messaging.tables import kit_tables
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from notifier_service.domain.kinds import NotificationKind
from notifier_service.settings import SCHEMA

metadata = MetaData(
    schema=SCHEMA,
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    },
)

CHANNELS = ("email", "webhook")
DELIVERY_STATUSES = ("pending", "sent", "failed", "dead_lettered")
ATTEMPT_OUTCOMES = ("sent", "transient", "permanent")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


users = Table(
    "users",
    metadata,
    Column("id", UUID(as_uuid=True), nullable=False),
    Column("email", Text, nullable=False),
    Column("full_name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("version", BigInteger, nullable=False, comment="auth's per-user version."),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("id"),
    comment="Read model of auth's users: who to address, and how.",
)

preferences = Table(
    "preferences",
    metadata,
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("email", Boolean, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("user_id"),
    comment="A user's notification preferences; no row: the defaults (email on).",
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", UUID(as_uuid=True), nullable=False),
    Column(
        "seq",
        BigInteger,
        Identity(always=True),
        nullable=False,
        comment="Creation order; the SSE event id.",
    ),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("kind", Text, nullable=False),
    Column(
        "cause",
        Text,
        nullable=False,
        comment="What it is about (e.g. results.published:<exam>); one per user and cause.",
    ),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("data", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column(
        "facts",
        JSONB,
        nullable=False,
        server_default=text("'{}'::jsonb"),
        comment="What the email is rendered from; never a token.",
    ),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("read_at", DateTime(timezone=True), nullable=True),
    PrimaryKeyConstraint("id"),
    UniqueConstraint("user_id", "cause"),
    UniqueConstraint("seq"),
    CheckConstraint(_in("kind", tuple(k.value for k in NotificationKind)), name="kind"),
    comment="In-app notifications, one per (user, cause).",
)
# The inbox, newest first, and the stream's resume (seq > Last-Event-ID).
Index("ix_notifications_user_id_seq", notifications.c.user_id, notifications.c.seq)
# unread_count and ?unread=true without reading the read ones.
Index(
    "ix_notifications_user_id_unread",
    notifications.c.user_id,
    notifications.c.seq,
    postgresql_where=notifications.c.read_at.is_(None),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column(
        "notification_id",
        UUID(as_uuid=True),
        ForeignKey("notifications.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("channel", Text, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'pending'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text, nullable=True, comment="The last failure, for a person."),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    PrimaryKeyConstraint("notification_id", "channel"),
    CheckConstraint(_in("channel", CHANNELS), name="channel"),
    CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
    comment="Where each outward delivery (email, webhook) of a notification stands.",
)
# No index on pending deliveries by channel: the planner took it over the
# primary key for a batch's lookups and updates, scanning every pending
# delivery of the channel per statement (slower with each pending row).

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", BigInteger, Identity(always=True), nullable=False),
    Column("notification_id", UUID(as_uuid=True), nullable=False),
    Column("channel", Text, nullable=False),
    Column("attempt", Integer, nullable=False, comment="1 for the first attempt."),
    Column("outcome", Text, nullable=False),
    Column("detail", Text, nullable=True, comment="Why it failed (never a token)."),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("id"),
    CheckConstraint(_in("channel", CHANNELS), name="channel"),
    CheckConstraint(_in("outcome", ATTEMPT_OUTCOMES), name="outcome"),
    comment="Every delivery attempt and its outcome.",
)
Index(
    "ix_delivery_attempts_notification_id",
    delivery_attempts.c.notification_id,
    delivery_attempts.c.channel,
)
Index("ix_delivery_attempts_at", delivery_attempts.c.at)

kit_tables(metadata, SCHEMA)
