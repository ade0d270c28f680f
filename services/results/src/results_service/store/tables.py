"""Tables of the results service (schema ``results``), as SQLAlchemy Core.

Migration 0001 creates exactly these tables (a test compares the two). Tables
of other modules (results, publication) join the same :data:`metadata`, so
one ``MetaData`` describes the whole schema.

Numbers are ``NUMERIC`` with two decimals: marks and percentages are exact
(DESIGN.md "Money-like exactness"); Python sees them as ``Decimal``.
"""

from __future__ import annotations

from service_kit.messaging.tables import kit_tables
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from results_service.settings import SCHEMA

metadata = MetaData(
    schema=SCHEMA,
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    },
)

# Marks and max marks: up to 99999.99. Percentages: up to 100.00 (5,2).
MARK = Numeric(7, 2, asdecimal=True)
PERCENT = Numeric(5, 2, asdecimal=True)
POINTS = Numeric(6, 2, asdecimal=True)

EXAM_STATUSES = ("draft", "scheduled", "published")
RANK_METHODS = ("competition", "dense")
MARK_STATUSES = ("present", "absent", "exempt")
MARK_SOURCES = ("api", "import")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


exams = Table(
    "exams",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("code", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("term", Text),
    Column("status", Text, nullable=False, server_default=text("'draft'")),
    Column("publish_at", DateTime(timezone=True)),
    Column("published_at", DateTime(timezone=True)),
    Column("pass_percent", PERCENT, nullable=False, server_default=text("0")),
    Column("rank_method", Text, nullable=False, server_default=text("'competition'")),
    Column("created_by", UUID(as_uuid=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column(
        "marks_version",
        BigInteger,
        nullable=False,
        server_default=text("0"),
        comment="Bumped in the transaction of every mark or definition change.",
    ),
    Column(
        "results_version",
        BigInteger,
        comment="marks_version the last finished generation reflected; NULL: never generated.",
    ),
    Column(
        "last_generation",
        BigInteger,
        nullable=False,
        server_default=text("0"),
        comment="Fencing token counter: the number of the latest generation issued.",
    ),
    Column("results_generated_at", DateTime(timezone=True)),
    CheckConstraint(_in("status", EXAM_STATUSES), name="status"),
    CheckConstraint(_in("rank_method", RANK_METHODS), name="rank_method"),
    # Case-insensitive: "MATH-1" and "math-1" are the same exam code to a person.
    Index("uq_exams_code_lower", func.lower(text("code")), unique=True),
    # The list endpoint's keyset: newest first.
    Index("ix_exams_created_at_id", "created_at", "id"),
    comment="Exams: definition header, publication state, staleness bookkeeping.",
)

subjects = Table(
    "subjects",
    metadata,
    Column(
        "exam_id",
        UUID(as_uuid=True),
        ForeignKey("exams.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("code", Text, nullable=False),
    Column("position", Integer, nullable=False, comment="Order of the subject in the exam."),
    Column("name", Text, nullable=False),
    Column("max_mark", MARK, nullable=False),
    Column("pass_mark", MARK, nullable=False),
    Column("credits", MARK, nullable=False, server_default=text("1")),
    Column(
        "examiner_ids",
        ARRAY(UUID(as_uuid=True)),
        nullable=False,
        server_default=text("'{}'"),
        comment="Examiners who may write marks; empty: any examiner.",
    ),
    PrimaryKeyConstraint("exam_id", "code"),
    CheckConstraint("max_mark > 0", name="max_mark_positive"),
    CheckConstraint("pass_mark >= 0 AND pass_mark <= max_mark", name="pass_mark_range"),
    CheckConstraint("credits > 0", name="credits_positive"),
)

grade_bands = Table(
    "grade_bands",
    metadata,
    Column(
        "exam_id",
        UUID(as_uuid=True),
        ForeignKey("exams.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("grade", Text, nullable=False),
    Column("min_percent", PERCENT, nullable=False),
    Column("points", POINTS, nullable=False),
    PrimaryKeyConstraint("exam_id", "min_percent"),
    Index("uq_grade_bands_exam_id_grade", "exam_id", "grade", unique=True),
    CheckConstraint("min_percent >= 0 AND min_percent <= 100", name="min_percent_range"),
    CheckConstraint("points >= 0", name="points_not_negative"),
)

students = Table(
    "students",
    metadata,
    Column("user_id", UUID(as_uuid=True), primary_key=True, comment="auth's user id."),
    Column("student_number", Text, nullable=False, unique=True),
    Column("full_name", Text, nullable=False, server_default=text("''")),
    Column("email", Text, nullable=False, server_default=text("''")),
    Column(
        "active",
        Boolean,
        nullable=False,
        comment="auth's active flag; invited students are inactive yet may get marks.",
    ),
    Column(
        "source_version",
        BigInteger,
        nullable=False,
        comment="auth's version of the user we hold; an event with an older one is ignored.",
    ),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    comment="Read model of auth's students, fed by user.created/user.updated and lookups.",
)

marks = Table(
    "marks",
    metadata,
    Column("exam_id", UUID(as_uuid=True), nullable=False),
    Column(
        "student_id",
        UUID(as_uuid=True),
        ForeignKey("students.user_id"),
        nullable=False,
    ),
    Column("subject_code", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("mark", MARK),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_by", UUID(as_uuid=True), nullable=False),
    PrimaryKeyConstraint("exam_id", "student_id", "subject_code"),
    # A subject with marks cannot disappear from under them (PATCH refuses it first).
    ForeignKeyConstraint(
        ["exam_id", "subject_code"],
        ["subjects.exam_id", "subjects.code"],
        name="fk_marks_subject",
    ),
    CheckConstraint(_in("status", MARK_STATUSES), name="status"),
    CheckConstraint("(status = 'present') = (mark IS NOT NULL)", name="mark_iff_present"),
    CheckConstraint("mark IS NULL OR mark >= 0", name="mark_not_negative"),
    # ?subject_code= lists in student order without a sort.
    Index("ix_marks_exam_id_subject_code_student_id", "exam_id", "subject_code", "student_id"),
    comment="One entry per (exam, student, subject); no row means the mark is missing.",
)

mark_audit = Table(
    "mark_audit",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("exam_id", UUID(as_uuid=True), nullable=False),
    Column("student_id", UUID(as_uuid=True), nullable=False),
    Column("subject_code", Text, nullable=False),
    Column("old_status", Text),
    Column("old_mark", MARK),
    Column("new_status", Text, nullable=False),
    Column("new_mark", MARK),
    Column("changed_by", UUID(as_uuid=True), nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("reason", Text),
    Column("source", Text, nullable=False),
    Column("job_id", UUID(as_uuid=True), comment="The bulk import job, for source 'import'."),
    CheckConstraint(_in("source", MARK_SOURCES), name="source"),
    Index("ix_mark_audit_exam_id_id", "exam_id", "id"),
    Index("ix_mark_audit_exam_id_student_id_id", "exam_id", "student_id", "id"),
    comment="Every change of a mark: written in the transaction of the change.",
)

processed_chunks = Table(
    "processed_chunks",
    metadata,
    Column("job_id", UUID(as_uuid=True), nullable=False),
    Column("chunk_no", Integer, nullable=False),
    Column("exam_id", UUID(as_uuid=True), nullable=False),
    Column("result", JSONB, nullable=False, comment="The chunk's reply, re-sent on a re-delivery."),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("job_id", "chunk_no"),
    Index("ix_processed_chunks_processed_at", "processed_at"),
    comment="Mark-import chunks already applied: a chunk is applied once per (job, chunk).",
)

kit = kit_tables(metadata, SCHEMA)
outbox = kit.outbox
inbox = kit.inbox
