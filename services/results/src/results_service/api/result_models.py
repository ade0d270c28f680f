"""Response bodies of the result endpoints (the Result of API.md), for the OpenAPI document.

The routes pass PostgreSQL-built JSON through unchanged; these models describe it.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

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


_RFC3339_DATE = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]")


def _rfc3339_only(value: Any) -> Any:
    # Lax datetime parsing takes 60 or "60" as seconds after 1970: a schedule in
    # the past, so the exam would be published at once. Only RFC 3339 text passes.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339_DATE.match(value):
        raise PydanticCustomError("datetime_type", "An RFC 3339 date-time was expected.")
    return value


Rfc3339In = Annotated[AwareDatetime, BeforeValidator(_rfc3339_only)]


class PublishIn(BaseModel):
    # Unknown fields are refused like in every other body: a misspelt "at" would
    # otherwise publish at once instead of scheduling.
    model_config = ConfigDict(extra="forbid")

    at: Rfc3339In | None = Field(
        None,
        description="When to publish (RFC 3339 with offset). Absent or not in the future: now.",
    )
