"""Password reset tokens share the invitations table, told apart by ``purpose``.

Both are single-use tokens with which a user sets a password
(``POST /auth/password/reset`` takes either), so one table and one take
statement serve both; ``purpose`` lets a new reset request void only the older
reset tokens of its user, never an invitation an admin sent. Existing rows are
invitations.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "invitations",
        sa.Column(
            "purpose",
            sa.Text(),
            server_default=sa.text("'invitation'"),
            nullable=False,
            comment="`invitation` (an admin created the user) or `password_reset` "
            "(the user asked for one).",
        ),
        schema="auth",
    )
    op.create_check_constraint(
        op.f("ck_invitations_purpose"),
        "invitations",
        "purpose IN ('invitation', 'password_reset')",
        schema="auth",
    )
    op.create_table_comment(
        "invitations",
        "Single-use tokens with which a user sets a password: invitations and password resets.",
        existing_comment="Single-use tokens with which an invited user sets a password.",
        schema="auth",
    )


def downgrade() -> None:
    # Reset tokens would become invitations: drop them (they live an hour anyway).
    op.execute("DELETE FROM auth.invitations WHERE purpose = 'password_reset'")
    op.create_table_comment(
        "invitations",
        "Single-use tokens with which an invited user sets a password.",
        existing_comment="Single-use tokens with which a user sets a password: invitations "
        "and password resets.",
        schema="auth",
    )
    op.drop_constraint(op.f("ck_invitations_purpose"), "invitations", schema="auth")
    op.drop_column("invitations", "purpose", schema="auth")
