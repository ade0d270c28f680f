"""Users, refresh-token families, invitations, and the kit's outbox/inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 10:22:54.508812
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _trigram_schema() -> str:
    """Where pg_trgm lives: created in `auth` unless the database has it already.

    pg_trgm is a trusted extension (PG 13+), so the `auth` role may create it
    with CREATE on the database and no superuser. An extension exists once per
    database: if the platform (or another service) installed it elsewhere, that
    copy is used. The operator class is then named with its schema, because
    the migrating role's search_path need not include it.
    """
    if context.is_offline_mode():
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA auth")
        return "auth"
    bind = op.get_bind()
    bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA auth"))
    schema = bind.execute(
        sa.text(
            "SELECT n.nspname FROM pg_extension e "
            "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"
        )
    ).scalar_one()
    return str(schema)


def _create_trigram_indexes() -> None:
    # `q` of GET /users is a substring search (ILIKE '%q%'): only trigram
    # indexes keep it off a full scan of the users table.
    opclass = f'"{_trigram_schema()}".gin_trgm_ops'
    for column in ("email", "full_name"):
        op.execute(
            f"CREATE INDEX ix_users_{column}_trgm ON auth.users USING gin ({column} {opclass})"
        )


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("message_id", sa.UUID(), nullable=False),
        sa.Column("consumer", sa.Text(), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("message_id", "consumer", name="pk_inbox"),
        schema="auth",
        comment="Inbox: ids of messages a consumer has applied, for idempotency.",
    )
    op.create_index("ix_inbox_received_at", "inbox", ["received_at"], unique=False, schema="auth")
    op.create_table(
        "outbox",
        sa.Column("id", sa.UUID(), nullable=False, comment="Message id of the event."),
        sa.Column("type", sa.Text(), nullable=False, comment="Event type, e.g. user.created."),
        sa.Column("version", sa.Integer(), nullable=False, comment="Schema version of data."),
        sa.Column("routing_key", sa.Text(), nullable=False),
        sa.Column("producer", sa.Text(), nullable=False),
        sa.Column(
            "payload",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="The event's data object.",
        ),
        sa.Column(
            "headers",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
            comment="Request id and W3C trace context captured at write time.",
        ),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        schema="auth",
        comment="Transactional outbox: events written with the business change, relayed later.",
    )
    op.create_index(
        "ix_outbox_sent_at",
        "outbox",
        ["sent_at"],
        unique=False,
        schema="auth",
        postgresql_where=sa.text("sent_at IS NOT NULL"),
    )
    op.create_index(
        "ix_outbox_unsent_created_at",
        "outbox",
        ["created_at"],
        unique=False,
        schema="auth",
        postgresql_where=sa.text("sent_at IS NULL"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column(
            "email",
            sa.Text(),
            nullable=False,
            comment="As entered (normalized); unique lower-cased.",
        ),
        sa.Column("full_name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("student_number", sa.Text(), nullable=True, comment="Students only; unique."),
        sa.Column(
            "password_hash",
            sa.Text(),
            nullable=True,
            comment="Argon2id PHC string; NULL until the invite is taken.",
        ),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(role = 'student') = (student_number IS NOT NULL)",
            name=op.f("ck_users_student_number"),
        ),
        sa.CheckConstraint("role IN ('admin', 'examiner', 'student')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("student_number", name=op.f("uq_users_student_number")),
        schema="auth",
        comment="Accounts of the platform.",
    )
    _create_trigram_indexes()
    op.create_index(
        "ix_users_role_email_lower",
        "users",
        ["role", sa.literal_column("lower(email)")],
        unique=False,
        schema="auth",
    )
    op.create_index(
        "uq_users_email_lower",
        "users",
        [sa.literal_column("lower(email)")],
        unique=True,
        schema="auth",
    )
    op.create_table(
        "invitations",
        sa.Column("token_hash", sa.LargeBinary(), nullable=False, comment="SHA-256 of the token."),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["auth.users.id"],
            name=op.f("fk_invitations_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_invitations")),
        schema="auth",
        comment="Single-use tokens with which an invited user sets a password.",
    )
    op.create_index(
        op.f("ix_invitations_user_id"), "invitations", ["user_id"], unique=False, schema="auth"
    )
    op.create_table(
        "refresh_families",
        sa.Column("id", sa.UUID(), nullable=False, comment="The `sid` of access tokens."),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["auth.users.id"],
            name=op.f("fk_refresh_families_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_families")),
        schema="auth",
        comment="One sign-in session: the chain of refresh tokens rotated from one login.",
    )
    op.create_index(
        op.f("ix_refresh_families_user_id"),
        "refresh_families",
        ["user_id"],
        unique=False,
        schema="auth",
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("token_hash", sa.LargeBinary(), nullable=False, comment="SHA-256 of the token."),
        sa.Column("family_id", sa.UUID(), nullable=False),
        sa.Column(
            "issued_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "rotated_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Set when it was exchanged.",
        ),
        sa.ForeignKeyConstraint(
            ["family_id"],
            ["auth.refresh_families.id"],
            name=op.f("fk_refresh_tokens_family_id_refresh_families"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_refresh_tokens")),
        schema="auth",
        comment="Refresh tokens by hash; a rotated one presented again revokes its family.",
    )
    op.create_index(
        op.f("ix_refresh_tokens_family_id"),
        "refresh_tokens",
        ["family_id"],
        unique=False,
        schema="auth",
    )
    # The purge job's path: tokens long expired.
    op.create_index(
        op.f("ix_refresh_tokens_expires_at"),
        "refresh_tokens",
        ["expires_at"],
        unique=False,
        schema="auth",
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_refresh_tokens_expires_at"), table_name="refresh_tokens", schema="auth")
    op.drop_index(op.f("ix_refresh_tokens_family_id"), table_name="refresh_tokens", schema="auth")
    op.drop_table("refresh_tokens", schema="auth")
    op.drop_index(op.f("ix_refresh_families_user_id"), table_name="refresh_families", schema="auth")
    op.drop_table("refresh_families", schema="auth")
    op.drop_index(op.f("ix_invitations_user_id"), table_name="invitations", schema="auth")
    op.drop_table("invitations", schema="auth")
    op.drop_index("uq_users_email_lower", table_name="users", schema="auth")
    op.drop_index("ix_users_role_email_lower", table_name="users", schema="auth")
    op.drop_index(
        "ix_users_full_name_trgm",
        table_name="users",
        schema="auth",
        postgresql_using="gin",
        postgresql_ops={"full_name": "gin_trgm_ops"},
    )
    op.drop_index(
        "ix_users_email_trgm",
        table_name="users",
        schema="auth",
        postgresql_using="gin",
        postgresql_ops={"email": "gin_trgm_ops"},
    )
    op.drop_table("users", schema="auth")
    op.drop_index(
        "ix_outbox_unsent_created_at",
        table_name="outbox",
        schema="auth",
        postgresql_where=sa.text("sent_at IS NULL"),
    )
    op.drop_index(
        "ix_outbox_sent_at",
        table_name="outbox",
        schema="auth",
        postgresql_where=sa.text("sent_at IS NOT NULL"),
    )
    op.drop_table("outbox", schema="auth")
    op.drop_index("ix_inbox_received_at", table_name="inbox", schema="auth")
    op.drop_table("inbox", schema="auth")
