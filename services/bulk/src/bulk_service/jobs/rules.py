"""The import rules of each job kind, built from the header row.

They adapt the pure file rules of ``domain.marks_file`` and ``domain.users_file``
to the worker: every locally valid entry becomes a :class:`StagedEntry` whose
payload is exactly what the chunk command carries, with the key that finds
duplicates across the whole file.
"""

from __future__ import annotations

from bulk_service.clients.results import ResultsClient, ResultsUnavailable
from bulk_service.domain.jobs import Job, JobError, JobKind
from bulk_service.domain.marks_file import HeaderRejected, MarksLayout, Shape, read_marks_header
from bulk_service.domain.sheets import SheetRow
from bulk_service.domain.users_file import UsersHeaderRejected, UsersLayout, read_users_header
from bulk_service.jobs.imports import HeaderProblem, ImportRules, JobFailure, RowReading
from bulk_service.store.staging import StagedEntry

_KEY_SEPARATOR = "\x1f"
"""Between student number and subject code in a duplicate key: no cell holds it."""


class MarkRules:
    duplicate_message = "The same student and subject appear on rows "

    def __init__(self, layout: MarksLayout) -> None:
        self._layout = layout
        self._wide = layout.shape is Shape.WIDE
        self._mark_columns = layout.mark_columns

    def read_row(self, row: SheetRow) -> RowReading:
        entries, errors = self._layout.parse_row(row)
        if self._wide:
            cells = row.cells
            total = sum(1 for i in self._mark_columns if i < len(cells) and cells[i].strip())
        else:
            total = 1
        if errors and total == 0:
            total = 1
        staged = [
            StagedEntry(
                row_no=e.row,
                dedupe_key=e.student_number + _KEY_SEPARATOR + e.subject_code,
                column_name=e.subject_code if self._wide else "subject_code",
                shown_value=e.student_number,
                payload={
                    "row": e.row,
                    "student_number": e.student_number,
                    "subject_code": e.subject_code,
                    "status": e.status,
                    "mark": None if e.mark is None else str(e.mark),
                },
            )
            for e in entries
        ]
        return RowReading(staged, errors, max(total, len(staged)))


class UserRules:
    duplicate_message = "The same email appears on rows "

    def __init__(self, layout: UsersLayout) -> None:
        self._layout = layout

    def read_row(self, row: SheetRow) -> RowReading:
        entry, errors = self._layout.parse_row(row)
        if entry is None:
            return RowReading([], errors, 1)
        staged = StagedEntry(
            row_no=entry.row,
            # auth decides identity on its canonical form; casefold catches the
            # common duplicates here, auth the rest (within a chunk).
            dedupe_key=entry.email.casefold(),
            column_name="email",
            shown_value=entry.email,
            payload={
                "row": entry.row,
                "email": entry.email,
                "full_name": entry.full_name,
                "role": entry.role,
                "student_number": entry.student_number,
                "password": entry.password,
            },
        )
        return RowReading([staged], errors, 1)


class RulesFactory:
    def __init__(self, results: ResultsClient, *, patience_seconds: float) -> None:
        self._results = results
        self._patience = patience_seconds

    async def rules_for(self, job: Job, header: SheetRow) -> ImportRules:
        try:
            if job.kind is JobKind.USERS_IMPORT:
                return UserRules(read_users_header(header))
            if job.exam_id is None:
                raise JobFailure(JobError.EXAM_NOT_FOUND.value, "The job names no exam.")
            exam = await self._results.exam(
                job.exam_id, fresh=True, patience_seconds=self._patience
            )
            if exam is None:
                raise JobFailure(JobError.EXAM_NOT_FOUND.value, "The exam no longer exists.")
            return MarkRules(read_marks_header(header, exam.subjects))
        except (HeaderRejected, UsersHeaderRejected) as exc:
            raise HeaderProblem(list(exc.errors)) from exc
        except ResultsUnavailable as exc:
            raise JobFailure(
                JobError.RESULTS_UNAVAILABLE.value,
                "The results service could not be reached for the exam's subjects; "
                "upload the file again later.",
            ) from exc
