"""Access-token revocations: the users' access epoch and the revocation feed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column(
            "access_epoch",
            sa.Integer(),
            nullable=False,
            server_default=sa.text("0"),
            comment="Raised to end every access token issued before it (deactivation, role "
            "change); tokens carry it as `access_epoch`.",
        ),
        schema="auth",
    )
    op.create_table(
        "access_revocations",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column(
            "xact_id",
            sa.BigInteger(),
            nullable=False,
            server_default=sa.text("(pg_current_xact_id()::text::bigint)"),
            comment="Transaction that wrote the row: the feed's cursor (see store/revocations.py).",
        ),
        sa.Column("user_id", UUID(as_uuid=True), nullable=False),
        sa.Column("session_id", UUID(as_uuid=True), comment="Set: that session's tokens end."),
        sa.Column(
            "min_access_epoch",
            sa.Integer(),
            comment="Set: the user's tokens with a lower access_epoch end.",
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("seq", name="pk_access_revocations"),
        sa.CheckConstraint(
            "(session_id IS NULL) <> (min_access_epoch IS NULL)",
            name="ck_access_revocations_one_scope",
        ),
        schema="auth",
        comment="Events that end access tokens before they expire; read by every verifier.",
    )
    op.create_index(
        "ix_access_revocations_xact_id", "access_revocations", ["xact_id"], schema="auth"
    )
    op.create_index(
        "ix_access_revocations_created_at", "access_revocations", ["created_at"], schema="auth"
    )


def downgrade() -> None:
    op.drop_table("access_revocations", schema="auth")
    op.drop_column("users", "access_epoch", schema="auth")
