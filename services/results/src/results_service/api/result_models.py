"""Response bodies of the result endpoints (the Result of API.md), for the OpenAPI document.

The routes pass PostgreSQL-built JSON through unchanged; these models describe it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field

from results_service.api.numbers import JsonDecimal


class SubjectResultOut(BaseModel):
    code: str
    status: Literal["present", "absent", "exempt"]
    mark: JsonDecimal | None = Field(description="0 when absent; null when exempt.")
    percentage: JsonDecimal | None
    grade: str | None
    points: JsonDecimal | None
    passed: bool | None


class ResultOut(BaseModel):
    exam_id: uuid.UUID
    student_number: str
    student_name: str | None
    status: Literal["complete", "incomplete"]
    total: JsonDecimal | None
    max_total: JsonDecimal | None
    percentage: JsonDecimal | None
    grade: str | None
    gpa: JsonDecimal | None
    passed: bool | None
    rank: int | None
    generation: int = Field(description="The generation that last changed this result.")
    subjects: list[SubjectResultOut]


class GenerationOut(BaseModel):
    exam_id: uuid.UUID
    generation: int = Field(description="The generation the results now come from.")
    candidates: int
    complete: int
    incomplete: int
    changed: int = Field(description="Result rows that generation added, changed or removed.")
    generated_at: datetime | None


class PublishIn(BaseModel):
    at: AwareDatetime | None = Field(
        None,
        description="When to publish (RFC 3339 with offset). Absent or not in the future: now.",
    )
