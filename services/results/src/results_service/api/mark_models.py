"""Request and response bodies of the mark endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from results_service.api.numbers import JsonDecimal, JsonNumberIn
from results_service.store.marks import AuditEntry, StoredMark
from results_service.usecases.mark_entries import MAX_BATCH_ENTRIES, MarkInput

Key = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]


class MarkEntryIn(BaseModel):
    """One entry: ``present`` with a mark, or ``absent`` / ``exempt`` without one."""

    model_config = ConfigDict(extra="forbid")

    student_number: Key
    subject_code: Key
    status: Annotated[str, StringConstraints(max_length=32)] = Field(
        description="`present`, `absent` or `exempt`."
    )
    mark: JsonNumberIn | None = Field(
        None, description="Required when present: 0..max_mark, 2 decimals."
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
    status: str
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
    old_status: str | None
    old_mark: JsonDecimal | None
    new_status: str
    new_mark: JsonDecimal | None
    changed_by: uuid.UUID
    changed_at: datetime
    reason: str | None
    source: str = Field(description="`api` or `import`.")
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
