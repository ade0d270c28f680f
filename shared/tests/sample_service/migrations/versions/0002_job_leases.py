"""The kit's job lease table, through the kit's migration helper.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op
from service_kit.migrations import create_job_leases_table

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_job_leases_table("sample")


def downgrade() -> None:
    op.drop_table("job_leases", schema="sample")
