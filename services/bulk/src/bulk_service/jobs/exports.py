"""Running an export job: results' NDJSON stream in, a CSV or XLSX file out, into Postgres.

The whole file is written in ONE transaction together with the job's end
(``succeeded`` and ``bulk.job.completed`` in the outbox), fenced by the
lease: a worker killed halfway leaves no part of a file, and the worker that
takes the job over writes it again from the top. Nothing is held whole: lines
are turned into rows and rows into bytes as they arrive, and the bytes go to
Postgres in parts of ``UPLOAD_PART_BYTES``.

A reader task takes the HTTP stream a piece at a time (the complete lines of
each piece) into a small bounded queue while this task turns the previous
pieces into file bytes and writes the parts: the stream is read during the
part writes' round trips instead of after them, and at most ``_QUEUED``
pieces (about 64 KiB each, results' flush size) wait in memory.

A line that is not a Result fails the job at once with ``RESULTS_INVALID``:
the same stream would break the same way on every retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncGenerator

from service_kit.db import Database

from bulk_service.clients.results import ResultsClient, ResultsUnavailable
from bulk_service.domain.export_files import ExportFileWriter
from bulk_service.domain.export_rows import BadResultLine, export_columns, rows_function
from bulk_service.domain.jobs import Job, JobError, JobStatus
from bulk_service.jobs.lease import JobLease, LeaseLost
from bulk_service.store import files
from bulk_service.store import jobs as jobs_store
from bulk_service.usecases.jobs import download_name
from bulk_service.usecases.settle import fail_job, finish

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
"""Runs of one export (each cut off mid-stream, or killed) before it fails for good."""
_QUEUED = 8
"""Pieces of the results stream read ahead of the file writing."""


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
        if job.attempts > MAX_ATTEMPTS:
            # Whatever keeps breaking it (as imports do): a job never runs forever.
            async with self._db.transaction() as session:
                await fail_job(session, job.id, "INTERNAL", "The job failed repeatedly.")
            return
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
        try:
            await self._write_file(job, lease, exam.code, codes)
        except BadResultLine as error:
            log.error("export %s: results sent a line that is not a Result: %s", job.id, error)
            await self._fail(
                job,
                JobError.RESULTS_INVALID,
                "The results service sent a result this export cannot read; nothing was exported.",
            )

    async def _write_file(
        self, job: Job, lease: JobLease, exam_code: str, codes: list[str]
    ) -> None:
        assert job.exam_id is not None
        to_rows = rows_function(codes)
        async with self._db.transaction() as session:
            await files.delete_file(session, job.id, files.EXPORT)
            parts = files.PartWriter(session, job.id, files.EXPORT, self._part_bytes)
            writer = ExportFileWriter(job.format, export_columns(codes), exam_code)
            await parts.write(writer.start())
            rows = 0
            async with contextlib.aclosing(self._read_ahead(job.exam_id)) as pieces:
                async for lines in pieces:
                    batch = to_rows(lines)
                    lease.check()
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
                file_name=download_name(job, exam_code),
            )
            if current is None:
                raise LeaseLost(f"job {job.id}")
            if current.status is JobStatus.RUNNING:
                await finish(session, current)

    async def _read_ahead(self, exam_id: uuid.UUID) -> AsyncGenerator[list[bytes], None]:
        """results' line batches, read by a task of their own up to ``_QUEUED`` ahead."""
        queue: asyncio.Queue[list[bytes] | BaseException | None] = asyncio.Queue(_QUEUED)

        async def read() -> None:
            try:
                async for lines in self._results.result_line_batches(exam_id):
                    await queue.put(lines)
            except Exception as error:  # handed to the consumer, which raises it
                await queue.put(error)
            else:
                await queue.put(None)

        reader = asyncio.create_task(read())
        try:
            while True:
                item = await queue.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _fail(self, job: Job, code: JobError, message: str) -> None:
        async with self._db.transaction() as session:
            await fail_job(session, job.id, code.value, message)
