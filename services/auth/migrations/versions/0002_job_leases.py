"""The kit's job lease table (periodic jobs that run once across replicas).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op
from service_kit.migrations import create_job_leases_table

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_job_leases_table("auth")


def downgrade() -> None:
    op.drop_table("job_leases", schema="auth")
