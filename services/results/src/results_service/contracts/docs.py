"""The marks section of docs/events.md, generated from the contract models.

``uv run python -m results_service.contracts.docs --write`` rewrites the
section between its markers; a test fails when the page and the models
disagree, so the docs cannot drift.
"""

from __future__ import annotations

import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from results_service.contracts.marks_changed import (
    MARKS_CHANGED_TYPE,
    MARKS_CHANGED_VERSION,
    MarksChangedV1,
)
from results_service.contracts.marks_import import (
    IMPORT_CHUNK_RESULT_TYPE,
    IMPORT_CHUNK_RESULT_VERSION,
    IMPORT_CHUNK_ROUTING_KEY,
    IMPORT_CHUNK_TYPE,
    IMPORT_CHUNK_VERSION,
    ImportRowError,
    MarkImportChunkResultV1,
    MarkImportChunkV1,
    MarkImportRow,
    Requester,
)
from results_service.contracts.results_events import (
    RECIPIENTS_PER_CHUNK,
    RESULTS_PUBLISHED_TYPE,
    RESULTS_PUBLISHED_VERSION,
    RESULTS_UPDATED_TYPE,
    RESULTS_UPDATED_VERSION,
    Recipient,
    ResultsPublishedV1,
    ResultsUpdatedV1,
    UpdatedRecipient,
)

BEGIN_MARKER = "<!-- results marks events: begin (generated; do not edit) -->"
END_MARKER = "<!-- results marks events: end -->"
EVENTS_MD = Path(__file__).resolve().parents[5] / "docs" / "events.md"


@dataclass(frozen=True)
class Message:
    event_type: str
    version: int
    routing_key: str
    producer: str
    consumers: str
    model: type[BaseModel]
    summary: str
    notes: str
    parts: tuple[type[BaseModel], ...]
    example: dict[str, Any]


_JOB = "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"
_EXAM = "2b9e4c1a-7d3f-4e8a-9b6c-1d2e3f4a5b6c"
_USER = "0b7c8f0e-58a5-4ad4-9d5b-1f0a3c6e2d11"

MESSAGES = (
    Message(
        MARKS_CHANGED_TYPE,
        MARKS_CHANGED_VERSION,
        MARKS_CHANGED_TYPE,
        "results",
        "results (debounced automatic regeneration)",
        MarksChangedV1,
        "The inputs of an exam's results changed; its `marks_version` grew.",
        "Written in the transaction that bumped `marks_version`: after a batch of marks "
        "(API or import) that changed at least one entry, and after a PATCH of the exam's "
        "definition. Regenerate when `results_version < marks_version`; duplicates and "
        "reordering are harmless.",
        (),
        {
            "exam_id": _EXAM,
            "marks_version": 7,
            "cause": "marks",
            "source": "api",
            "changed": 120,
            "exam_published": False,
        },
    ),
    Message(
        IMPORT_CHUNK_TYPE,
        IMPORT_CHUNK_VERSION,
        IMPORT_CHUNK_ROUTING_KEY,
        "bulk",
        "results (queue `results.mark-import-chunks`)",
        MarkImportChunkV1,
        "A command: apply these parsed CSV rows of a marks import job.",
        "Applied with the same validation and upsert as `PUT /exams/{id}/marks` (audit source "
        "`import`), once per `(job_id, chunk_no)`: a chunk sent again is not applied twice, "
        "and is answered again with the stored answer. `partial` applies the valid rows; "
        "`all_or_nothing` applies none if any row is bad (a chunk is results' unit of "
        "atomicity: send an all-or-nothing job as one chunk, or dry-run every chunk first); "
        "`dry_run` validates only. Duplicate (student, subject) pairs are detected within a "
        "chunk; bulk detects them across chunks. Over 5000 rows, or a payload that fails the "
        'model: dead-lettered. Marks are decimal strings (`"79.50"`).',
        (Requester, MarkImportRow),
        {
            "job_id": _JOB,
            "chunk_no": 0,
            "exam_id": _EXAM,
            "mode": "partial",
            "dry_run": False,
            "requested_by": {"user_id": _USER, "role": "examiner"},
            "reason": None,
            "rows": [
                {
                    "row": 2,
                    "student_number": "S-1001",
                    "subject_code": "MATH",
                    "status": "present",
                    "mark": "79.50",
                },
                {
                    "row": 3,
                    "student_number": "S-1002",
                    "subject_code": "MATH",
                    "status": "absent",
                    "mark": None,
                },
            ],
        },
    ),
    Message(
        IMPORT_CHUNK_RESULT_TYPE,
        IMPORT_CHUNK_RESULT_VERSION,
        IMPORT_CHUNK_RESULT_TYPE,
        "results",
        "bulk (job progress, error CSV)",
        MarkImportChunkResultV1,
        "The answer to one `marks.import_chunk`.",
        "Written to the outbox in the transaction that applied the chunk. Counts are per row "
        "of the chunk. A chunk refused as a whole (no such exam, requester not allowed, exam "
        "published without a reason) is answered with one error on row 0 and every row "
        "failed. Treat answers idempotently per `(job_id, chunk_no)`.",
        (ImportRowError,),
        {
            "job_id": _JOB,
            "chunk_no": 0,
            "exam_id": _EXAM,
            "dry_run": False,
            "applied": True,
            "rows_ok": 1,
            "rows_unchanged": 0,
            "rows_failed": 1,
            "errors": [
                {
                    "row": 3,
                    "column": "student_number",
                    "code": "STUDENT_NOT_FOUND",
                    "message": "no student has the number 'S-1002'",
                    "value": "S-1002",
                }
            ],
            "marks_version": 8,
        },
    ),
    Message(
        RESULTS_PUBLISHED_TYPE,
        RESULTS_PUBLISHED_VERSION,
        RESULTS_PUBLISHED_TYPE,
        "results",
        "notifier (one `results_published` notification per student)",
        ResultsPublishedV1,
        "An exam's results were published (now, or by the scheduler at `publish_at`).",
        "Written in the transaction that set the exam `published`, so it exists if and only "
        "if the publication committed; a scheduled exam is published once across replicas. "
        f"Every candidate (every student with a result row) is a recipient, in chunks of at "
        f"most {RECIPIENTS_PER_CHUNK} ordered by student_number: one event per chunk, "
        "`chunk_no` from 0 to `chunk_count - 1`. Treat each chunk on its own; "
        "`(exam_id, chunk_no)` names a chunk (a publication happens once per exam).",
        (Recipient,),
        {
            "exam_id": _EXAM,
            "exam_code": "PHYS-2026-S",
            "exam_name": "Physics, spring 2026",
            "published_at": "2026-11-22T10:15:30.123456+00:00",
            "generation": 4,
            "chunk_no": 0,
            "chunk_count": 1,
            "recipients": [
                {"student_id": _USER, "student_number": "S-1001"},
                {"student_id": "5f8e2a11-9c3b-4d7e-8a1f-2b3c4d5e6f70", "student_number": "S-1002"},
            ],
        },
    ),
    Message(
        RESULTS_UPDATED_TYPE,
        RESULTS_UPDATED_VERSION,
        RESULTS_UPDATED_TYPE,
        "results",
        "notifier (one `results_updated` notification per student and generation)",
        ResultsUpdatedV1,
        "A regeneration of a published exam changed some results.",
        "Written in the transaction of the generation that changed the rows (after marks "
        "were corrected), for exactly the students whose result row it inserted, changed or "
        "deleted: a student whose rank moved because of someone else's correction is one; a "
        "student whose values are all unchanged is not. A generation that changes nothing "
        "writes nothing. Same chunking as `results.published`; `(exam_id, generation, "
        "chunk_no)` names a chunk.",
        (UpdatedRecipient,),
        {
            "exam_id": _EXAM,
            "exam_code": "PHYS-2026-S",
            "exam_name": "Physics, spring 2026",
            "generation": 5,
            "chunk_no": 0,
            "chunk_count": 1,
            "recipients": [
                {"student_id": _USER, "student_number": "S-1001", "change": "updated"},
            ],
        },
    ),
)


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        nullable = " or null" if type(None) in args else ""
        return " or ".join(names) + nullable
    if origin is list:
        return f"array of {_type_name(args[0])}"
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"object ({annotation.__name__})"
    name = getattr(annotation, "__name__", str(annotation))
    return {
        "UUID": "string (uuid)",
        "str": "string",
        "bool": "boolean",
        "int": "integer",
        "Decimal": "decimal string",
        "datetime": "string (RFC 3339, UTC)",
        "ImportMode": "`partial` \\| `all_or_nothing`",
    }.get(name, name)


def _fields_table(model: type[BaseModel]) -> list[str]:
    lines = ["| field | type | meaning |", "|---|---|---|"]
    for name, field in model.model_fields.items():
        meaning = (field.description or "").replace("\n", " ")
        lines.append(f"| `{name}` | {_type_name(field.annotation)} | {meaning} |")
    return lines


def events_markdown() -> str:
    """The section, markers included."""
    lines = [
        BEGIN_MARKER,
        "<!-- Regenerate: uv run python -m results_service.contracts.docs --write -->",
        "",
    ]
    for m in MESSAGES:
        lines += [
            f"### `{m.event_type}` v{m.version}",
            "",
            m.summary,
            "",
            f"- Routing key: `{m.routing_key}`; producer: `{m.producer}`",
            f"- Consumers: {m.consumers}",
            f"- Payload model: `{m.model.__module__}.{m.model.__name__}`",
            f"- {m.notes}",
            "",
            *_fields_table(m.model),
            "",
        ]
        for part in m.parts:
            lines += [f"`{part.__name__}`:", "", *_fields_table(part), ""]
        m.model.model_validate(m.example)  # an example that stops validating fails the docs
        example = orjson.dumps(m.example, option=orjson.OPT_INDENT_2).decode()
        lines += ["Example `data`:", "", "```json", example, "```", ""]
    lines.append(END_MARKER)
    return "\n".join(lines) + "\n"


def write_into(path: Path) -> None:
    """Replaces the section in ``path`` (or appends it the first time)."""
    text = path.read_text(encoding="utf-8")
    section = events_markdown()
    if BEGIN_MARKER in text and END_MARKER in text:
        before, rest = text.split(BEGIN_MARKER, 1)
        _, after = rest.split(END_MARKER, 1)
        text = before + section.rstrip("\n") + after
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    if "--write" in sys.argv:
        write_into(EVENTS_MD)
    else:
        sys.stdout.write(events_markdown())
