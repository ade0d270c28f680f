"""Users are unique by a canonical email computed in Python, no longer by lower(email).

Adds ``users.email_canonical`` (NFKC, Unicode case folding, NFKC: see
``auth_service.domain.users.canonical_email``), fills it for every existing
row, and moves the unique index and the listing index onto it. Postgres
``lower()`` depends on the collation (it made ``İnfo`` and ``info`` one
address) and leaves lookalikes apart (a fullwidth ``s``, U+FF53, in ``stu1``).

Rows that were separate accounts but share a canonical form (lookalikes made
before this revision) cannot be merged by a migration: it stops, naming the
user ids, and changes nothing; give all but one of each group another email
(``UPDATE auth.users SET email = ... WHERE id = ...``) and run it again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

# The application's own rule, not a copy of it: the keys written here must be the
# ones sign-in computes, with whatever code runs this migration.
from auth_service.domain.users import email_key

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


class CanonicalEmailCollision(RuntimeError):
    """Existing accounts whose addresses are one address under the canonical rule."""


def _canonical_forms() -> list[dict[str, object]]:
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, email FROM auth.users ORDER BY created_at, id"))
    forms = [{"id": row.id, "canonical": email_key(row.email)} for row in rows]
    groups: defaultdict[object, list[str]] = defaultdict(list)
    for form in forms:
        groups[form["canonical"]].append(str(form["id"]))
    shared = [ids for ids in groups.values() if len(ids) > 1]
    if shared:
        # Ids only: the addresses are personal data, and this message is logged.
        listed = "; ".join(", ".join(ids) for ids in shared)
        raise CanonicalEmailCollision(
            f"{len(shared)} group(s) of users share one canonical email, give all but one "
            f"of each group another email and migrate again: {listed}"
        )
    return forms


def upgrade() -> None:
    if context.is_offline_mode():
        raise RuntimeError("0004 computes canonical emails in Python: run it online")
    op.add_column(
        "users",
        sa.Column(
            "email_canonical",
            sa.Text(),
            nullable=True,
            comment="NFKC and case-folded email (domain/users.canonical_email): unique, sort key.",
        ),
        schema="auth",
    )
    forms = _canonical_forms()
    if forms:
        op.get_bind().execute(
            sa.text("UPDATE auth.users SET email_canonical = :canonical WHERE id = :id"), forms
        )
    op.alter_column("users", "email_canonical", nullable=False, schema="auth")
    op.drop_index("uq_users_email_lower", table_name="users", schema="auth")
    op.drop_index("ix_users_role_email_lower", table_name="users", schema="auth")
    op.create_index(
        "uq_users_email_canonical", "users", ["email_canonical"], unique=True, schema="auth"
    )
    op.create_index(
        "ix_users_role_email_canonical",
        "users",
        ["role", "email_canonical"],
        unique=False,
        schema="auth",
    )
    op.alter_column(
        "users",
        "email",
        comment="As entered (normalized); shown and mailed to.",
        existing_comment="As entered (normalized); unique lower-cased.",
        existing_type=sa.Text(),
        existing_nullable=False,
        schema="auth",
    )


def downgrade() -> None:
    # Fails if two users now differ only in what lower() folds (İnfo and info).
    op.alter_column(
        "users",
        "email",
        comment="As entered (normalized); unique lower-cased.",
        existing_comment="As entered (normalized); shown and mailed to.",
        existing_type=sa.Text(),
        existing_nullable=False,
        schema="auth",
    )
    op.drop_index("ix_users_role_email_canonical", table_name="users", schema="auth")
    op.drop_index("uq_users_email_canonical", table_name="users", schema="auth")
    op.create_index(
        "uq_users_email_lower",
        "users",
        [sa.literal_column("lower(email)")],
        unique=True,
        schema="auth",
    )
    op.create_index(
        "ix_users_role_email_lower",
        "users",
        ["role", sa.literal_column("lower(email)")],
        unique=False,
        schema="auth",
    )
    op.drop_column("users", "email_canonical", schema="auth")
