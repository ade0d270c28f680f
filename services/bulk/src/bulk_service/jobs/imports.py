"""Running an import job: read the upload into staged entries, then send chunks.

Reading (stage ``reading``) happens in ONE transaction: every staged entry,
every row error, the duplicate check and the move to the next stage commit
together, fenced by the lease. A worker that dies while reading leaves
nothing behind (its transaction rolls back) and the next one reads the file
again from the top. Sending (``checking`` / ``applying``) commits one chunk
at a time together with its outbox row and the job's ``chunks_sent``, so a
worker that takes over resumes after the last chunk that went out; the
addressee applies a chunk once per (job, chunk), so a chunk sent twice (a
resend of an unanswered one) is never applied twice.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from service_kit.db import Database
from service_kit.messaging.outbox import add_event
from sqlalchemy.ext.asyncio import AsyncSession

from bulk_service.domain.jobs import (
    READING_SHARE,
    Job,
    JobError,
    JobKind,
    JobStatus,
    Stage,
    reading_progress,
)
from bulk_service.domain.row_errors import RowError
from bulk_service.domain.sheets import FileProblem, FileRejected, ReadLimits, SheetRow
from bulk_service.jobs.commands import chunk_command
from bulk_service.jobs.lease import JobLease, LeaseLost
from bulk_service.jobs.metrics import CHUNKS_SENT, IMPORT_ROWS
from bulk_service.jobs.sources import upload_rows
from bulk_service.store import jobs as jobs_store
from bulk_service.store import staging
from bulk_service.store.staging import StagedEntry
from bulk_service.usecases.settle import fail_job, finish, settle

log = logging.getLogger(__name__)

PROGRESS_EVERY_SECONDS = 0.5
MAX_ATTEMPTS = 5
"""Runs of one job that may fail unexpectedly before it is failed for good."""


@dataclass(slots=True)
class RowReading:
    """What one file row became."""

    entries: list[StagedEntry] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    total: int = 0
    """Entries the row holds (a wide marks row: one per filled mark cell)."""


class HeaderProblem(Exception):
    """The header cannot be used; ``errors`` name each column."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors


class JobFailure(Exception):
    """The job fails as a whole with this code and message (the exam is gone...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ImportRules(Protocol):
    """How one kind of file becomes staged entries and chunk commands."""

    duplicate_message: str

    def read_row(self, row: SheetRow) -> RowReading: ...


RulesFor = Callable[[Job, SheetRow], Awaitable[ImportRules]]
"""Builds the rules of a job from its header row; raises HeaderProblem or JobFailure."""


class ImportWork:
    """The work of an import job, for :class:`~bulk_service.jobs.runner.JobRunner`."""

    def __init__(
        self,
        db: Database,
        rules_for: RulesFor,
        *,
        limits: ReadLimits,
        batch_rows: int,
        chunk_rows: Mapping[JobKind, int],
    ) -> None:
        self._db = db
        self._chunk_rows = dict(chunk_rows)
        self._rules_for = rules_for
        self._limits = limits
        self._batch_rows = batch_rows

    async def __call__(self, job: Job, lease: JobLease) -> None:
        if job.attempts > MAX_ATTEMPTS:
            async with self._db.transaction() as session:
                await fail_job(session, job.id, "INTERNAL", "The job failed repeatedly.")
            return
        if job.stage is Stage.READING:
            read = await self._read(job, lease)
            if read is None:
                return
            job = read
        if job.stage in (Stage.CHECKING, Stage.APPLYING):
            await self._send(job, lease)

    # -- reading ---------------------------------------------------------------------

    async def _read(self, job: Job, lease: JobLease) -> Job | None:
        owner = lease.owner
        async with self._db.transaction() as session:
            # Left by nothing (a dead reader's transaction rolled back), but a
            # reading job holds no errors or entries of its own yet: start clean.
            await staging.clear_staging(session, job.id)
            await staging.clear_errors(session, job.id)
            try:
                outcome = await self._stage_file(session, job, lease)
            except FileRejected as exc:
                await self._fail_read(session, job, exc.code.value, exc.message, owner)
                return None
            except HeaderProblem as exc:
                await staging.add_errors(session, job.id, exc.errors)
                await self._fail_read(
                    session,
                    job,
                    JobError.HEADER_INVALID.value,
                    "The header row cannot be used: " + str(exc),
                    owner,
                )
                return None
            except JobFailure as exc:
                await self._fail_read(session, job, exc.code, exc.message, owner)
                return None
            rules, data_rows, total, failed = outcome
            if data_rows == 0:
                await self._fail_read(
                    session,
                    job,
                    JobError.NO_ROWS.value,
                    "The file has a header row but no data rows.",
                    owner,
                )
                return None
            failed += await staging.fail_duplicates(session, job.id, rules.duplicate_message)
            staged = await staging.staged_count(session, job.id)
            chunks = math.ceil(staged / self._chunk_rows[job.kind])
            checking = job.all_or_nothing and not job.dry_run
            updated = await jobs_store.update_leased(
                session,
                job.id,
                owner,
                stage=(Stage.CHECKING if checking else Stage.APPLYING).value,
                rows_total=total,
                rows_failed=failed,
                chunks_total=chunks,
                chunks_sent=0,
                chunks_answered=0,
                progress=READING_SHARE,
            )
            if updated is None:
                raise LeaseLost(f"job {job.id}")
            IMPORT_ROWS.labels(job.kind.value, "failed").inc(failed)
            if updated.all_or_nothing and failed:
                await finish(
                    session,
                    updated,
                    error=(
                        JobError.ROWS_INVALID.value,
                        f"{failed} entries are invalid, so none was applied "
                        "(all_or_nothing); the errors file lists them.",
                    ),
                )
                return None
            if chunks == 0:
                await finish(session, updated)
                return None
            return updated

    async def _fail_read(
        self, session: AsyncSession, job: Job, code: str, message: str, owner: str
    ) -> None:
        current = await jobs_store.update_leased(session, job.id, owner, progress=1)
        if current is None:
            raise LeaseLost(f"job {job.id}")
        await finish(session, current, error=(code, message))

    async def _stage_file(
        self, session: AsyncSession, job: Job, lease: JobLease
    ) -> tuple[ImportRules, int, int, int]:
        """Stages every locally valid entry; returns (rules, data rows, entries, failed)."""
        rules: ImportRules | None = None
        pending: list[StagedEntry] = []
        errors: list[RowError] = []
        seq = data_rows = total = failed = 0
        last_progress = time.monotonic()
        async for batch in upload_rows(
            self._db, job.id, job.format, job.file_bytes or 0, self._limits
        ):
            lease.check()
            for row in batch.rows:
                if rules is None:
                    rules = await self._rules_for(job, row)
                    continue
                data_rows += 1
                reading = rules.read_row(row)
                total += reading.total
                failed += reading.total - len(reading.entries)
                if reading.entries:
                    pending.extend(reading.entries)
                if reading.errors:
                    errors.extend(reading.errors)
            if len(pending) >= self._batch_rows:
                await staging.copy_entries(session, job.id, seq, pending)
                seq += len(pending)
                pending = []
            if len(errors) >= self._batch_rows:
                await staging.add_errors(session, job.id, errors)
                errors = []
            if time.monotonic() - last_progress >= PROGRESS_EVERY_SECONDS:
                last_progress = time.monotonic()
                await self._progress(job, lease, batch.bytes_read)
        if rules is None:
            raise FileRejected(FileProblem.EMPTY, "The file is empty: it has no header row.")
        await staging.copy_entries(session, job.id, seq, pending)
        await staging.add_errors(session, job.id, errors)
        return rules, data_rows, total, failed

    async def _progress(self, job: Job, lease: JobLease, bytes_read: int) -> None:
        # Its own short transaction: the reading transaction commits only at the end.
        async with self._db.transaction() as session:
            held = await jobs_store.set_progress(
                session,
                job.id,
                lease.owner,
                reading_progress(bytes_read, job.file_bytes or 0),
            )
        if not held:
            raise LeaseLost(f"job {job.id}")

    # -- sending ---------------------------------------------------------------------

    async def _send(self, job: Job, lease: JobLease) -> None:
        dry_run = job.dry_run or job.stage is Stage.CHECKING
        async with self._db.read_session(fresh=True) as session:
            after = await staging.last_sent_seq(session, job.id, dry_run=dry_run)
            # The addressee applies a chunk once per (job, chunk number), whatever its
            # dry_run: an all_or_nothing job's real chunks are numbered after its
            # checking chunks, or they would be answered with the checks' answers.
            base = 0 if dry_run else await staging.chunk_count(session, job.id, dry_run=True)
        while True:
            lease.check()
            async with self._db.transaction() as session:
                current = await jobs_store.get_job(session, job.id, lock=True)
                if current is None or current.status is not JobStatus.RUNNING:
                    return
                if not await jobs_store.holds_lease(session, job.id, lease.owner):
                    raise LeaseLost(f"job {job.id}")
                stop = current.cancel_requested or current.error_code is not None
                if stop or current.chunks_sent >= (current.chunks_total or 0):
                    await self._all_sent(session, current)
                    return
                entries = await staging.next_entries(
                    session, job.id, after_seq=after, limit=self._chunk_rows[job.kind]
                )
                if not entries:  # fewer entries than counted: nothing more to send
                    await self._all_sent(session, current)
                    return
                chunk_no = base + current.chunks_sent
                payloads = [payload for _, payload in entries]
                await add_event(session, chunk_command(current, chunk_no, dry_run, payloads))
                await staging.record_chunk(
                    session,
                    job.id,
                    chunk_no=chunk_no,
                    dry_run=dry_run,
                    first_seq=entries[0][0],
                    last_seq=entries[-1][0],
                    entries=len(entries),
                )
                await jobs_store.update_job(session, job.id, chunks_sent=current.chunks_sent + 1)
                after = entries[-1][0]
            CHUNKS_SENT.labels(job.kind.value, "no").inc()

    async def _all_sent(self, session: AsyncSession, job: Job) -> None:
        """Every chunk of the stage is out (or the job stops early): await the answers."""
        waiting = Stage.AWAITING_CHECK if job.stage is Stage.CHECKING else Stage.WAITING
        job = await jobs_store.update_job(
            session,
            job.id,
            stage=waiting.value,
            chunks_total=job.chunks_sent,
            lease_owner=None,
            lease_until=None,
        )
        await settle(session, job)
