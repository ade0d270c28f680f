"""Request and response bodies of the mark endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from results_service.api.numbers import JsonDecimal, JsonNumberIn
from results_service.store.marks import AuditEntry, StoredMark
from results_service.usecases.exam_definition import MAX_MARK_VALUE
from results_service.usecases.mark_entries import MAX_BATCH_ENTRIES, MarkInput

Key = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]
MarkStatusName = Literal["present", "absent", "exempt"]
MarkSource = Literal["api", "import"]


class MarkEntryIn(BaseModel):
    """One entry: ``present`` with a mark, or ``absent`` / ``exempt`` without one."""

    # The status and the mark are checked by the domain (INVALID_STATUS,
    # MARK_REQUIRED, ...) with every other entry, so a batch reports all its
    # problems in one 422; the enum and the present-needs-a-mark rule are stated
    # for the OpenAPI document only.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "if": {"properties": {"status": {"const": "present"}}, "required": ["status"]},
            "then": {"properties": {"mark": {"type": "number"}}, "required": ["mark"]},
            "else": {"properties": {"mark": {"type": "null"}}},
        },
    )

    student_number: Key
    subject_code: Key
    status: Annotated[str, StringConstraints(max_length=32)] = Field(
        description="`present`, `absent` or `exempt`.",
        json_schema_extra={"enum": ["present", "absent", "exempt"]},
    )
    mark: JsonNumberIn | None = Field(
        None,
        description="Required when present: 0..max_mark, at most two decimals; "
        "absent or null otherwise.",
        json_schema_extra={"minimum": 0, "maximum": float(MAX_MARK_VALUE)},
    )


class PutMarksIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Refused while parsing (422 TOO_MANY_ENTRIES), before any entry is validated.
    marks: list[MarkEntryIn] = Field(
        max_length=MAX_BATCH_ENTRIES,
        description=f"At most {MAX_BATCH_ENTRIES} entries; all or none are written.",
    )
    reason: Annotated[str, StringConstraints(max_length=1000)] | None = Field(
        None, description="Why; required (non-empty) to change marks after publication."
    )

    def entries(self) -> list[MarkInput]:
        return [
            MarkInput(i, e.student_number, e.subject_code, e.status, e.mark)
            for i, e in enumerate(self.marks)
        ]


class PutMarksOut(BaseModel):
    written: int = Field(description="Entries that changed a stored mark.")
    unchanged: int = Field(description="Entries equal to the stored mark (not rewritten).")


class MarkOut(BaseModel):
    student_number: str
    subject_code: str
    status: MarkStatusName
    mark: JsonDecimal | None
    updated_at: datetime
    updated_by: uuid.UUID

    @classmethod
    def of(cls, m: StoredMark) -> MarkOut:
        return cls(
            student_number=m.student_number,
            subject_code=m.subject_code,
            status=m.status,
            mark=m.mark,
            updated_at=m.updated_at,
            updated_by=m.updated_by,
        )


class MarkAuditOut(BaseModel):
    student_number: str
    subject_code: str
    old_status: MarkStatusName | None
    old_mark: JsonDecimal | None
    new_status: MarkStatusName
    new_mark: JsonDecimal | None
    changed_by: uuid.UUID
    changed_at: datetime
    reason: str | None
    source: MarkSource = Field(description="`api` or `import`.")
    job_id: uuid.UUID | None = Field(description="The import job, for source `import`.")

    @classmethod
    def of(cls, a: AuditEntry) -> MarkAuditOut:
        return cls(
            student_number=a.student_number,
            subject_code=a.subject_code,
            old_status=a.old_status,
            old_mark=a.old_mark,
            new_status=a.new_status,
            new_mark=a.new_mark,
            changed_by=a.changed_by,
            changed_at=a.changed_at,
            reason=a.reason,
            source=a.source,
            job_id=a.job_id,
        )
