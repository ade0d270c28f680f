"""Request and response bodies of the exam endpoints (the Exam of API.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from service_kit.patch import NULL_CLEARS, PatchModel

from results_service.api.numbers import JsonDecimal, JsonNumberIn
from results_service.store.exams import ExamRecord, GradeBandRecord, SubjectRecord
from results_service.usecases.exam_definition import (
    MAX_MARK_VALUE,
    MAX_POINTS_VALUE,
    ExamDefinition,
)
from results_service.usecases.exams import ExamChanges

# Rules the domain checks (so that every problem of a definition shows in one 422
# with its own detail code) are stated for the OpenAPI document only, through
# json_schema_extra: "not blank" is the pattern \S, bounds are minimum/maximum.
_NOT_BLANK: dict[str, Any] = {"pattern": r"\S"}
ExamCode = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    Field(json_schema_extra=_NOT_BLANK),
]
Label = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    Field(json_schema_extra=_NOT_BLANK),
]
Term = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]
RankMethodName = Literal["competition", "dense"]

# Codes and grades are checked by the domain (empty, duplicate); here only their
# length is bounded.
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]
NotBlankShortText = Annotated[ShortText, Field(json_schema_extra=_NOT_BLANK)]
_PERCENT: dict[str, Any] = {"minimum": 0, "maximum": 100}


class SubjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: NotBlankShortText = Field(description="Unique in the exam.")
    name: Label
    max_mark: JsonNumberIn = Field(
        description="> 0, at most two decimals.",
        json_schema_extra={"exclusiveMinimum": 0, "maximum": float(MAX_MARK_VALUE)},
    )
    pass_mark: JsonNumberIn = Field(
        description="0 <= pass_mark <= max_mark, at most two decimals.",
        json_schema_extra={"minimum": 0, "maximum": float(MAX_MARK_VALUE)},
    )
    credits: JsonNumberIn = Field(
        Decimal(1),
        description="> 0, at most two decimals; weight in the GPA.",
        json_schema_extra={"exclusiveMinimum": 0, "maximum": float(MAX_MARK_VALUE), "default": 1},
    )
    examiner_ids: list[uuid.UUID] = Field(
        default_factory=list,
        max_length=100,
        description="Examiners who may write this subject's marks; empty: any examiner.",
    )

    def record(self) -> SubjectRecord:
        return SubjectRecord(
            code=self.code,
            name=self.name,
            max_mark=self.max_mark,
            pass_mark=self.pass_mark,
            credits=self.credits,
            examiner_ids=tuple(dict.fromkeys(self.examiner_ids)),
        )


_ZERO_BAND: dict[str, Any] = {
    "type": "object",
    "properties": {"min_percent": {"const": 0}},
    "required": ["min_percent"],
}


class GradeBandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grade: NotBlankShortText = Field(description="Unique in the scale.")
    min_percent: JsonNumberIn = Field(
        description="0..100, at most two decimals, unique in the scale; one band has 0.",
        json_schema_extra=_PERCENT,
    )
    points: JsonNumberIn = Field(
        description=">= 0, at most two decimals; grade points for the GPA.",
        json_schema_extra={"minimum": 0, "maximum": float(MAX_POINTS_VALUE)},
    )

    def record(self) -> GradeBandRecord:
        return GradeBandRecord(self.grade, self.min_percent, self.points)


class ExamCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: ExamCode = Field(description="Unique, compared case-insensitively.")
    name: Label
    term: Term | None = None
    subjects: list[SubjectIn] = Field(
        max_length=200, description="At least one.", json_schema_extra={"minItems": 1}
    )
    grading_scale: list[GradeBandIn] = Field(
        max_length=100,
        description="Bands by their lowest percentage; one of them starts at 0.",
        json_schema_extra={"contains": _ZERO_BAND},
    )
    pass_percent: JsonNumberIn = Field(
        Decimal(0),
        description="0..100, at most two decimals.",
        json_schema_extra={**_PERCENT, "default": 0},
    )
    rank_method: RankMethodName = "competition"

    def definition(self) -> ExamDefinition:
        return ExamDefinition(
            subjects=tuple(s.record() for s in self.subjects),
            grading_scale=tuple(b.record() for b in self.grading_scale),
            pass_percent=self.pass_percent,
            rank_method=self.rank_method,
        )


class ExamPatch(PatchModel):
    """Fields to change; ``subjects`` and ``grading_scale`` replace the whole list.

    Null is refused for every field but ``term``, where it (or "") clears the term.
    """

    code: ExamCode | None = None
    name: Label | None = None
    term: Annotated[Term | None, NULL_CLEARS] = None
    subjects: list[SubjectIn] | None = Field(
        None, max_length=200, description="At least one.", json_schema_extra={"minItems": 1}
    )
    grading_scale: list[GradeBandIn] | None = Field(
        None,
        max_length=100,
        description="One band starts at 0.",
        json_schema_extra={"contains": _ZERO_BAND},
    )
    pass_percent: JsonNumberIn | None = Field(
        None, description="0..100, at most two decimals.", json_schema_extra=_PERCENT
    )
    rank_method: RankMethodName | None = None

    def changes(self) -> ExamChanges:
        sent = self.sent_fields()
        subjects, scale = sent.get("subjects"), sent.get("grading_scale")
        return ExamChanges(
            code=sent.get("code"),
            name=sent.get("name"),
            term=sent.get("term") or None,
            term_set="term" in sent,
            subjects=tuple(s.record() for s in subjects) if subjects is not None else None,
            grading_scale=tuple(b.record() for b in scale) if scale is not None else None,
            pass_percent=sent.get("pass_percent"),
            rank_method=sent.get("rank_method"),
        )


class SubjectOut(BaseModel):
    code: str
    name: str
    max_mark: JsonDecimal
    pass_mark: JsonDecimal
    credits: JsonDecimal
    examiner_ids: list[uuid.UUID]


class GradeBandOut(BaseModel):
    grade: str
    min_percent: JsonDecimal
    points: JsonDecimal


class ExamOut(BaseModel):
    """The Exam of API.md (plus ``updated_at``)."""

    id: uuid.UUID
    code: str
    name: str
    term: str | None
    status: Literal["draft", "scheduled", "published"]
    publish_at: datetime | None
    published_at: datetime | None
    subjects: list[SubjectOut]
    grading_scale: list[GradeBandOut]
    pass_percent: JsonDecimal
    rank_method: RankMethodName
    results_stale: bool = Field(description="True while results miss a mark or definition change.")
    results_generated_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, exam: ExamRecord) -> ExamOut:
        return cls(
            id=exam.id,
            code=exam.code,
            name=exam.name,
            term=exam.term,
            status=exam.status,
            publish_at=exam.publish_at,
            published_at=exam.published_at,
            subjects=[
                SubjectOut(
                    code=s.code,
                    name=s.name,
                    max_mark=s.max_mark,
                    pass_mark=s.pass_mark,
                    credits=s.credits,
                    examiner_ids=list(s.examiner_ids),
                )
                for s in exam.subjects
            ],
            grading_scale=[
                GradeBandOut(grade=b.grade, min_percent=b.min_percent, points=b.points)
                for b in exam.grading_scale
            ],
            pass_percent=exam.pass_percent,
            rank_method=exam.rank_method,
            results_stale=exam.results_stale,
            results_generated_at=exam.results_generated_at,
            created_at=exam.created_at,
            updated_at=exam.updated_at,
        )
