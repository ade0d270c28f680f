"""Results, generation bookkeeping, and the scheduler's index on exams.

``results``: one row per candidate, rewritten only when a value changes
(``generation`` = the fencing token of the generation that last changed it).
``generation_runs``: one row per committed generation. The partial index on
``exams.publish_at`` serves the publication scheduler's due-exam claim.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Expands the positional subject list of a result row into the API's objects,
# in exam order: [[code, status, mark, percentage, grade, points, passed], ...]
# -> [{"code": ..., "status": ..., ...}, ...]. Numbers keep their NUMERIC text.
SUBJECT_RESULTS = """
CREATE FUNCTION results.subject_results(compact jsonb) RETURNS json
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(
        json_agg(
            json_build_object(
                'code', e -> 0, 'status', e -> 1, 'mark', e -> 2, 'percentage', e -> 3,
                'grade', e -> 4, 'points', e -> 5, 'passed', e -> 6
            ) ORDER BY i
        ),
        '[]'::json
    )
    FROM jsonb_array_elements(compact) WITH ORDINALITY AS t(e, i)
$$
"""


def upgrade() -> None:
    op.create_table(
        "generation_runs",
        sa.Column("exam_id", sa.UUID(), nullable=False),
        sa.Column(
            "generation", sa.BigInteger(), nullable=False, comment="The fencing token it ran with."
        ),
        sa.Column(
            "marks_version", sa.BigInteger(), nullable=False, comment="marks_version it reflected."
        ),
        sa.Column("candidates", sa.Integer(), nullable=False),
        sa.Column("complete", sa.Integer(), nullable=False),
        sa.Column("incomplete", sa.Integer(), nullable=False),
        sa.Column(
            "changed", sa.Integer(), nullable=False, comment="Rows inserted, updated or deleted."
        ),
        sa.Column(
            "removed",
            sa.Integer(),
            nullable=False,
            comment="Rows deleted (no longer candidates).",
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "runner", sa.Text(), nullable=False, comment="host:pid that ran it (diagnostics)."
        ),
        sa.ForeignKeyConstraint(
            ["exam_id"],
            ["results.exams.id"],
            name=op.f("fk_generation_runs_exam_id_exams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("exam_id", "generation", name=op.f("pk_generation_runs")),
        schema="results",
        comment="Every committed generation of an exam's results.",
    )
    op.create_table(
        "results",
        sa.Column("exam_id", sa.UUID(), nullable=False),
        sa.Column("student_id", sa.UUID(), nullable=False, comment="auth's user id."),
        sa.Column("student_number", sa.Text(collation="C"), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("total", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("max_total", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("percentage", sa.Numeric(precision=5, scale=2), nullable=True),
        sa.Column("grade", sa.Text(), nullable=True),
        sa.Column("gpa", sa.Numeric(precision=6, scale=2), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column(
            "subjects",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="[[code, status, mark, percentage, grade, points, passed], ...] in exam "
            "order; results.subject_results() expands it.",
        ),
        sa.Column(
            "generation",
            sa.BigInteger(),
            nullable=False,
            comment="Fencing token of the generation that last changed this row.",
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("status IN ('complete', 'incomplete')", name=op.f("ck_results_status")),
        sa.ForeignKeyConstraint(
            ["exam_id"],
            ["results.exams.id"],
            name=op.f("fk_results_exam_id_exams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("student_id", "exam_id", name=op.f("pk_results")),
        schema="results",
        comment="Computed results: one row per candidate, rewritten only when a value changes.",
        postgresql_with={"fillfactor": "90"},
    )
    op.create_index(
        "ix_results_exam_id_rank_student_number",
        "results",
        ["exam_id", sa.literal_column("coalesce(rank, 2147483647)"), "student_number"],
        unique=False,
        schema="results",
    )
    op.create_index(
        "ix_results_exam_id_student_number",
        "results",
        ["exam_id", "student_number"],
        unique=False,
        schema="results",
    )
    op.create_index(
        "ix_exams_publish_at_scheduled",
        "exams",
        ["publish_at"],
        unique=False,
        schema="results",
        postgresql_where=sa.text("status = 'scheduled'"),
    )
    op.execute(SUBJECT_RESULTS)


def downgrade() -> None:
    op.execute("DROP FUNCTION results.subject_results(jsonb)")
    op.drop_index("ix_exams_publish_at_scheduled", table_name="exams", schema="results")
    op.drop_index("ix_results_exam_id_student_number", table_name="results", schema="results")
    op.drop_index("ix_results_exam_id_rank_student_number", table_name="results", schema="results")
    op.drop_table("results", schema="results")
    op.drop_table("generation_runs", schema="results")
