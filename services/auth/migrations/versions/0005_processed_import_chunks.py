"""bulk's users-import chunks already applied (a chunk is applied once per job and chunk).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "processed_import_chunks",
        sa.Column("job_id", sa.UUID(), nullable=False),
        sa.Column("chunk_no", sa.Integer(), nullable=False),
        sa.Column(
            "result",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="The chunk's answer, re-sent on a resend.",
        ),
        sa.Column(
            "processed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("job_id", "chunk_no", name=op.f("pk_processed_import_chunks")),
        schema="auth",
        comment="bulk's users-import chunks already applied: a chunk is applied once per "
        "(job, chunk).",
    )
    op.create_index(
        "ix_processed_import_chunks_processed_at",
        "processed_import_chunks",
        ["processed_at"],
        unique=False,
        schema="auth",
    )


def downgrade() -> None:
    op.drop_index(
        "ix_processed_import_chunks_processed_at",
        table_name="processed_import_chunks",
        schema="auth",
    )
    op.drop_table("processed_import_chunks", schema="auth")
