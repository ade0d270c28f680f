"""The tables of the ``auth`` schema (the migrations create exactly these)."""

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
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

SCHEMA = "auth"

metadata = MetaData(
    schema=SCHEMA,
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    },
)


users = Table(
    "users",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("email", Text, nullable=False, comment="As entered (normalized); shown and mailed to."),
    Column(
        "email_canonical",
        Text,
        nullable=False,
        comment="NFKC and case-folded email (domain/users.canonical_email): unique, sort key.",
    ),
    Column("full_name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("student_number", Text, comment="Students only; unique."),
    Column("password_hash", Text, comment="Argon2id PHC string; NULL until the invite is taken."),
    Column("active", Boolean, nullable=False),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column(
        "access_epoch",
        Integer,
        nullable=False,
        server_default=text("0"),
        comment="Raised to end every access token issued before it (deactivation, role "
        "change); tokens carry it as `access_epoch`.",
    ),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("role IN ('admin', 'examiner', 'student')", name="role"),
    CheckConstraint("(role = 'student') = (student_number IS NOT NULL)", name="student_number"),
    UniqueConstraint("student_number"),
    comment="Accounts of the platform.",
)
# Uniqueness of the canonical form lives in the database, so two concurrent
# creates of Ann@x.edu and its fullwidth lookalike cannot both succeed; it is also the
# listing order. The form is computed in Python, never by lower() (collation).
Index("uq_users_email_canonical", users.c.email_canonical, unique=True)
Index("ix_users_role_email_canonical", users.c.role, users.c.email_canonical)
# `q` is a substring search (ILIKE '%q%'); trigram indexes keep it off a full scan.
# The migration creates them with the operator class named by schema (pg_trgm
# may live in `auth` or wherever the database already had it).
Index(
    "ix_users_email_trgm",
    users.c.email,
    postgresql_using="gin",
    postgresql_ops={"email": "gin_trgm_ops"},
)
Index(
    "ix_users_full_name_trgm",
    users.c.full_name,
    postgresql_using="gin",
    postgresql_ops={"full_name": "gin_trgm_ops"},
)

refresh_families = Table(
    "refresh_families",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, comment="The `sid` of access tokens."),
    Column(
        "user_id",
        UUID(as_uuid=True),
        ForeignKey(users.c.id, ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revoked_reason", Text),
    comment="One sign-in session: the chain of refresh tokens rotated from one login.",
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", LargeBinary, primary_key=True, comment="SHA-256 of the token."),
    Column(
        "family_id",
        UUID(as_uuid=True),
        ForeignKey(refresh_families.c.id, ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("issued_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    Column("rotated_at", DateTime(timezone=True), comment="Set when it was exchanged."),
    comment="Refresh tokens by hash; a rotated one presented again revokes its family.",
)

invitations = Table(
    "invitations",
    metadata,
    Column("token_hash", LargeBinary, primary_key=True, comment="SHA-256 of the token."),
    Column(
        "user_id",
        UUID(as_uuid=True),
        ForeignKey(users.c.id, ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
    Column(
        "purpose",
        Text,
        nullable=False,
        server_default=text("'invitation'"),
        comment="`invitation` (an admin created the user) or `password_reset` "
        "(the user asked for one).",
    ),
    CheckConstraint("purpose IN ('invitation', 'password_reset')", name="purpose"),
    comment="Single-use tokens with which a user sets a password: invitations and password resets.",
)

access_revocations = Table(
    "access_revocations",
    metadata,
    Column("seq", BigInteger, Identity(always=True), primary_key=True),
    Column(
        "xact_id",
        BigInteger,
        nullable=False,
        server_default=text("(pg_current_xact_id()::text::bigint)"),
        index=True,
        comment="Transaction that wrote the row: the feed's cursor (see store/revocations.py).",
    ),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("session_id", UUID(as_uuid=True), comment="Set: that session's tokens end."),
    Column(
        "min_access_epoch",
        Integer,
        comment="Set: the user's tokens with a lower access_epoch end.",
    ),
    Column("reason", Text, nullable=False),
    Column(
        "created_at", DateTime(timezone=True), nullable=False, server_default=func.now(), index=True
    ),
    CheckConstraint("(session_id IS NULL) <> (min_access_epoch IS NULL)", name="one_scope"),
    comment="Events that end access tokens before they expire; read by every verifier.",
)

processed_import_chunks = Table(
    "processed_import_chunks",
    metadata,
    Column("job_id", UUID(as_uuid=True), nullable=False),
    Column("chunk_no", Integer, nullable=False),
    Column("result", JSONB, nullable=False, comment="The chunk's answer, re-sent on a resend."),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("job_id", "chunk_no"),
    Index("ix_processed_import_chunks_processed_at", "processed_at"),
    comment="bulk's users-import chunks already applied: a chunk is applied once per (job, chunk).",
)

# The kit's tables (outbox, inbox, job leases) in this schema, so the migrations create them here.
kit_tables(metadata, SCHEMA)
