"""Exams, subjects, grade bands, the students read model, marks and their audit,
processed import chunks, and the kit's outbox and inbox (schema ``results``).

Revision ID: 0001
Revises: -
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exams",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("term", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default=sa.text("'draft'"), nullable=False),
        sa.Column("publish_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "pass_percent",
            sa.Numeric(precision=5, scale=2),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column(
            "rank_method", sa.Text(), server_default=sa.text("'competition'"), nullable=False
        ),
        sa.Column("created_by", sa.UUID(), nullable=False),
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
        sa.Column(
            "marks_version",
            sa.BigInteger(),
            server_default=sa.text("0"),
            nullable=False,
            comment="Bumped in the transaction of every mark or definition change.",
        ),
        sa.Column(
            "results_version",
            sa.BigInteger(),
            nullable=True,
            comment="marks_version the last finished generation reflected; NULL: never generated.",
        ),
        sa.Column(
            "last_generation",
            sa.BigInteger(),
            server_default=sa.text("0"),
            nullable=False,
            comment="Fencing token counter: the number of the latest generation issued.",
        ),
        sa.Column("results_generated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "rank_method IN ('competition', 'dense')", name=op.f("ck_exams_rank_method")
        ),
        sa.CheckConstraint(
            "status IN ('draft', 'scheduled', 'published')", name=op.f("ck_exams_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exams")),
        schema="results",
        comment="Exams: definition header, publication state, staleness bookkeeping.",
    )
    op.create_index(
        "ix_exams_created_at_id", "exams", ["created_at", "id"], unique=False, schema="results"
    )
    op.create_index(
        "uq_exams_code_lower",
        "exams",
        [sa.literal_column("lower(code)")],
        unique=True,
        schema="results",
    )
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
        schema="results",
        comment="Inbox: ids of messages a consumer has applied, for idempotency.",
    )
    op.create_index(
        "ix_inbox_received_at", "inbox", ["received_at"], unique=False, schema="results"
    )
    op.create_table(
        "mark_audit",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("exam_id", sa.UUID(), nullable=False),
        sa.Column("student_id", sa.UUID(), nullable=False),
        sa.Column("subject_code", sa.Text(), nullable=False),
        sa.Column("old_status", sa.Text(), nullable=True),
        sa.Column("old_mark", sa.Numeric(precision=7, scale=2), nullable=True),
        sa.Column("new_status", sa.Text(), nullable=False),
        sa.Column("new_mark", sa.Numeric(precision=7, scale=2), nullable=True),
        sa.Column("changed_by", sa.UUID(), nullable=False),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column(
            "job_id", sa.UUID(), nullable=True, comment="The bulk import job, for source 'import'."
        ),
        sa.CheckConstraint("source IN ('api', 'import')", name=op.f("ck_mark_audit_source")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mark_audit")),
        schema="results",
        comment="Every change of a mark: written in the transaction of the change.",
    )
    op.create_index(
        "ix_mark_audit_exam_id_id", "mark_audit", ["exam_id", "id"], unique=False, schema="results"
    )
    op.create_index(
        "ix_mark_audit_exam_id_student_id_id",
        "mark_audit",
        ["exam_id", "student_id", "id"],
        unique=False,
        schema="results",
    )
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
        schema="results",
        comment="Transactional outbox: events written with the business change, relayed later.",
    )
    op.create_index(
        "ix_outbox_sent_at",
        "outbox",
        ["sent_at"],
        unique=False,
        schema="results",
        postgresql_where=sa.text("sent_at IS NOT NULL"),
    )
    op.create_index(
        "ix_outbox_unsent_created_at",
        "outbox",
        ["created_at"],
        unique=False,
        schema="results",
        postgresql_where=sa.text("sent_at IS NULL"),
    )
    op.create_table(
        "processed_chunks",
        sa.Column("job_id", sa.UUID(), nullable=False),
        sa.Column("chunk_no", sa.Integer(), nullable=False),
        sa.Column("exam_id", sa.UUID(), nullable=False),
        sa.Column(
            "result",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="The chunk's reply, re-sent on a re-delivery.",
        ),
        sa.Column(
            "processed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("job_id", "chunk_no", name=op.f("pk_processed_chunks")),
        schema="results",
        comment="Mark-import chunks already applied: a chunk is applied once per (job, chunk).",
    )
    op.create_index(
        "ix_processed_chunks_processed_at",
        "processed_chunks",
        ["processed_at"],
        unique=False,
        schema="results",
    )
    op.create_table(
        "students",
        sa.Column("user_id", sa.UUID(), nullable=False, comment="auth's user id."),
        sa.Column("student_number", sa.Text(), nullable=False),
        sa.Column("full_name", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("email", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column(
            "active",
            sa.Boolean(),
            nullable=False,
            comment="auth's active flag; invited students are inactive yet may get marks.",
        ),
        sa.Column(
            "source_version",
            sa.BigInteger(),
            nullable=False,
            comment="auth's version of the user we hold; an event with an older one is ignored.",
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_students")),
        sa.UniqueConstraint("student_number", name=op.f("uq_students_student_number")),
        schema="results",
        comment="Read model of auth's students, fed by user.created/user.updated and lookups.",
    )
    op.create_table(
        "grade_bands",
        sa.Column("exam_id", sa.UUID(), nullable=False),
        sa.Column("grade", sa.Text(), nullable=False),
        sa.Column("min_percent", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column("points", sa.Numeric(precision=6, scale=2), nullable=False),
        sa.CheckConstraint(
            "min_percent >= 0 AND min_percent <= 100", name=op.f("ck_grade_bands_min_percent_range")
        ),
        sa.CheckConstraint("points >= 0", name=op.f("ck_grade_bands_points_not_negative")),
        sa.ForeignKeyConstraint(
            ["exam_id"],
            ["results.exams.id"],
            name=op.f("fk_grade_bands_exam_id_exams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("exam_id", "min_percent", name=op.f("pk_grade_bands")),
        schema="results",
    )
    op.create_index(
        "uq_grade_bands_exam_id_grade",
        "grade_bands",
        ["exam_id", "grade"],
        unique=True,
        schema="results",
    )
    op.create_table(
        "subjects",
        sa.Column("exam_id", sa.UUID(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column(
            "position", sa.Integer(), nullable=False, comment="Order of the subject in the exam."
        ),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("max_mark", sa.Numeric(precision=7, scale=2), nullable=False),
        sa.Column("pass_mark", sa.Numeric(precision=7, scale=2), nullable=False),
        sa.Column(
            "credits", sa.Numeric(precision=7, scale=2), server_default=sa.text("1"), nullable=False
        ),
        sa.Column(
            "examiner_ids",
            postgresql.ARRAY(sa.UUID()),
            server_default=sa.text("'{}'"),
            nullable=False,
            comment="Examiners who may write marks; empty: any examiner.",
        ),
        sa.CheckConstraint("credits > 0", name=op.f("ck_subjects_credits_positive")),
        sa.CheckConstraint("max_mark > 0", name=op.f("ck_subjects_max_mark_positive")),
        sa.CheckConstraint(
            "pass_mark >= 0 AND pass_mark <= max_mark", name=op.f("ck_subjects_pass_mark_range")
        ),
        sa.ForeignKeyConstraint(
            ["exam_id"],
            ["results.exams.id"],
            name=op.f("fk_subjects_exam_id_exams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("exam_id", "code", name=op.f("pk_subjects")),
        schema="results",
    )
    op.create_table(
        "marks",
        sa.Column("exam_id", sa.UUID(), nullable=False),
        sa.Column("student_id", sa.UUID(), nullable=False),
        sa.Column("subject_code", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("mark", sa.Numeric(precision=7, scale=2), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("updated_by", sa.UUID(), nullable=False),
        sa.CheckConstraint(
            "(status = 'present') = (mark IS NOT NULL)", name=op.f("ck_marks_mark_iff_present")
        ),
        sa.CheckConstraint(
            "status IN ('present', 'absent', 'exempt')", name=op.f("ck_marks_status")
        ),
        sa.CheckConstraint("mark IS NULL OR mark >= 0", name=op.f("ck_marks_mark_not_negative")),
        sa.ForeignKeyConstraint(
            ["exam_id", "subject_code"],
            ["results.subjects.exam_id", "results.subjects.code"],
            name="fk_marks_subject",
        ),
        sa.ForeignKeyConstraint(
            ["student_id"], ["results.students.user_id"], name=op.f("fk_marks_student_id_students")
        ),
        sa.PrimaryKeyConstraint("exam_id", "student_id", "subject_code", name=op.f("pk_marks")),
        schema="results",
        comment="One entry per (exam, student, subject); no row means the mark is missing.",
    )
    op.create_index(
        "ix_marks_exam_id_subject_code_student_id",
        "marks",
        ["exam_id", "subject_code", "student_id"],
        unique=False,
        schema="results",
    )


def downgrade() -> None:
    op.drop_index("ix_marks_exam_id_subject_code_student_id", table_name="marks", schema="results")
    op.drop_table("marks", schema="results")
    op.drop_table("subjects", schema="results")
    op.drop_index("uq_grade_bands_exam_id_grade", table_name="grade_bands", schema="results")
    op.drop_table("grade_bands", schema="results")
    op.drop_table("students", schema="results")
    op.drop_index(
        "ix_processed_chunks_processed_at", table_name="processed_chunks", schema="results"
    )
    op.drop_table("processed_chunks", schema="results")
    op.drop_index(
        "ix_outbox_unsent_created_at",
        table_name="outbox",
        schema="results",
        postgresql_where=sa.text("sent_at IS NULL"),
    )
    op.drop_index(
        "ix_outbox_sent_at",
        table_name="outbox",
        schema="results",
        postgresql_where=sa.text("sent_at IS NOT NULL"),
    )
    op.drop_table("outbox", schema="results")
    op.drop_index("ix_mark_audit_exam_id_student_id_id", table_name="mark_audit", schema="results")
    op.drop_index("ix_mark_audit_exam_id_id", table_name="mark_audit", schema="results")
    op.drop_table("mark_audit", schema="results")
    op.drop_index("ix_inbox_received_at", table_name="inbox", schema="results")
    op.drop_table("inbox", schema="results")
    op.drop_index("uq_exams_code_lower", table_name="exams", schema="results")
    op.drop_index("ix_exams_created_at_id", table_name="exams", schema="results")
    op.drop_table("exams", schema="results")
