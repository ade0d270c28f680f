"""Running an export job: results' NDJSON stream in, a CSV or XLSX file out, into Postgres.

The whole file is written in ONE transaction together with the job's end
(``succeeded`` and ``bulk.job.completed`` in the outbox), fenced by the
lease: a worker killed halfway leaves no part of a file, and the worker that
takes the job over writes it again from the top. Nothing is held whole: lines
are turned into rows and rows into bytes as they arrive, and the bytes go to
Postgres in parts of ``UPLOAD_PART_BYTES``.
"""

from __future__ import annotations

import logging

from service_kit.db import Database

from bulk_service.clients.results import ResultsClient, ResultsUnavailable
from bulk_service.domain.export_files import ExportFileWriter
from bulk_service.domain.export_rows import Cell, export_columns, export_row, parse_result_line
from bulk_service.domain.jobs import Job, JobError, JobStatus
from bulk_service.jobs.lease import JobLease, LeaseLost
from bulk_service.store import files
from bulk_service.store import jobs as jobs_store
from bulk_service.usecases.jobs import download_name
from bulk_service.usecases.settle import fail_job, finish

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
"""Runs of one export (each cut off mid-stream, or killed) before it fails for good."""
_UNREACHABLE = "The results could not be read from the results service; export again later."
ROWS_PER_WRITE = 1000


class ExportWork:
    """The work of an export job, for :class:`~bulk_service.jobs.runner.JobRunner`."""

    def __init__(
        self,
        db: Database,
        results: ResultsClient,
        *,
        part_bytes: int,
        patience_seconds: float,
    ) -> None:
        self._db = db
        self._results = results
        self._part_bytes = part_bytes
        self._patience = patience_seconds

    async def __call__(self, job: Job, lease: JobLease) -> None:
        if job.exam_id is None:
            raise ValueError("an export names its exam")
        try:
            exam = await self._results.exam(job.exam_id, fresh=True)
        except ResultsUnavailable:
            if job.attempts >= MAX_ATTEMPTS:
                await self._fail(
                    job,
                    JobError.RESULTS_UNAVAILABLE,
                    "The results service could not be reached; export again later.",
                )
                return
            raise
        if exam is None:
            await self._fail(job, JobError.EXAM_NOT_FOUND, "The exam no longer exists.")
            return
        codes = [s.code for s in exam.subjects]
        async with self._db.transaction() as session:
            await files.delete_file(session, job.id, files.EXPORT)
            parts = files.PartWriter(session, job.id, files.EXPORT, self._part_bytes)
            writer = ExportFileWriter(job.format, export_columns(codes), exam.code)
            await parts.write(writer.start())
            rows = 0
            batch: list[list[Cell]] = []
            async for line in self._results.result_lines(job.exam_id):
                batch.append(export_row(parse_result_line(line), codes))
                if len(batch) >= ROWS_PER_WRITE:
                    lease.check()
                    await parts.write(writer.rows(batch))
                    rows += len(batch)
                    batch = []
            await parts.write(writer.rows(batch))
            rows += len(batch)
            await parts.write(writer.finish())
            await parts.close()
            current = await jobs_store.update_leased(
                session,
                job.id,
                lease.owner,
                rows_total=rows,
                rows_ok=rows,
                file_bytes=parts.size,
                file_name=download_name(job, exam.code),
            )
            if current is None:
                raise LeaseLost(f"job {job.id}")
            if current.status is JobStatus.RUNNING:
                await finish(session, current)

    async def _fail(self, job: Job, code: JobError, message: str) -> None:
        async with self._db.transaction() as session:
            await fail_job(session, job.id, code.value, message)
