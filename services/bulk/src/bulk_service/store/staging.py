"""Staged entries of an import, its chunks and its errors file.

Reading writes every locally valid entry to ``staged_entries`` with COPY;
duplicates across the whole file are then found in one statement, and the
chunks go out as ranges of ``seq`` read back in file order. Errors go to
``job_errors`` (the errors file), in row order when read.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from bulk_service.domain.row_errors import RowError
from bulk_service.settings import SCHEMA
from bulk_service.store.tables import job_chunks, job_errors, staged_entries


@dataclass(frozen=True, slots=True)
class StagedEntry:
    """One entry to stage: ``payload`` is what the chunk command carries for it."""

    row_no: int
    dedupe_key: str
    column_name: str
    shown_value: str
    payload: dict[str, Any]


async def _asyncpg(session: AsyncSession) -> Any:
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def copy_entries(
    session: AsyncSession, job_id: uuid.UUID, first_seq: int, entries: Sequence[StagedEntry]
) -> None:
    """Writes ``entries`` with COPY (the fastest way in), numbered from ``first_seq``."""
    if not entries:
        return
    records = [
        (
            job_id,
            first_seq + i,
            e.row_no,
            e.dedupe_key,
            e.column_name,
            e.shown_value,
            json.dumps(e.payload, separators=(",", ":")),
        )
        for i, e in enumerate(entries)
    ]
    driver = await _asyncpg(session)
    await driver.copy_records_to_table(
        "staged_entries",
        schema_name=SCHEMA,
        columns=["job_id", "seq", "row_no", "dedupe_key", "column_name", "shown_value", "payload"],
        records=records,
    )


async def add_errors(session: AsyncSession, job_id: uuid.UUID, errors: Sequence[RowError]) -> None:
    if not errors:
        return
    await session.execute(
        insert(job_errors),
        [
            {
                "job_id": job_id,
                "row_no": e.row,
                "column_name": e.column,
                "code": e.code,
                "message": e.message,
                "value": e.value,
            }
            for e in errors
        ],
    )


# Constant SQL: only the schema name is formatted in.
_DUPLICATES = text(
    f"""
    WITH keys AS (
        SELECT dedupe_key FROM {SCHEMA}.staged_entries
        WHERE job_id = :job_id GROUP BY dedupe_key HAVING count(*) > 1
    ), gone AS (
        DELETE FROM {SCHEMA}.staged_entries s USING keys
        WHERE s.job_id = :job_id AND s.dedupe_key = keys.dedupe_key
        RETURNING s.row_no, s.column_name, s.dedupe_key, s.shown_value
    ), rows AS (
        SELECT row_no, column_name, shown_value,
               array_agg(row_no) OVER (PARTITION BY dedupe_key) AS all_rows
        FROM gone
    ), written AS (
        INSERT INTO {SCHEMA}.job_errors (job_id, row_no, column_name, code, message, value)
        SELECT :job_id, row_no, column_name, 'DUPLICATE_ENTRY',
               :message || array_to_string(
                   ARRAY(SELECT DISTINCT r FROM unnest(all_rows) r ORDER BY r), ', '),
               shown_value
        FROM rows
        RETURNING 1
    )
    SELECT count(*) FROM written
    """  # noqa: S608
)


async def fail_duplicates(session: AsyncSession, job_id: uuid.UUID, message: str) -> int:
    """Removes every entry whose key appears more than once and writes a
    DUPLICATE_ENTRY error for each (API.md: an error on every row involved).
    Returns how many entries failed."""
    result = await session.execute(_DUPLICATES, {"job_id": job_id, "message": message})
    return int(result.scalar_one())


async def staged_count(session: AsyncSession, job_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count()).select_from(staged_entries).where(staged_entries.c.job_id == job_id)
    )
    return int(count or 0)


async def next_entries(
    session: AsyncSession, job_id: uuid.UUID, *, after_seq: int, limit: int
) -> list[tuple[int, dict[str, Any]]]:
    """The next ``limit`` entries after ``after_seq``, in file order: (seq, payload)."""
    result = await session.execute(
        select(staged_entries.c.seq, staged_entries.c.payload)
        .where(staged_entries.c.job_id == job_id, staged_entries.c.seq > after_seq)
        .order_by(staged_entries.c.seq)
        .limit(limit)
    )
    return [(int(seq), payload) for seq, payload in result.all()]


async def entries_between(
    session: AsyncSession, job_id: uuid.UUID, first_seq: int, last_seq: int
) -> list[dict[str, Any]]:
    result = await session.execute(
        select(staged_entries.c.payload)
        .where(
            staged_entries.c.job_id == job_id,
            staged_entries.c.seq >= first_seq,
            staged_entries.c.seq <= last_seq,
        )
        .order_by(staged_entries.c.seq)
    )
    return list(result.scalars())


async def clear_staging(session: AsyncSession, job_id: uuid.UUID) -> None:
    await session.execute(delete(staged_entries).where(staged_entries.c.job_id == job_id))


async def clear_errors(session: AsyncSession, job_id: uuid.UUID) -> None:
    await session.execute(delete(job_errors).where(job_errors.c.job_id == job_id))


# -- chunks -----------------------------------------------------------------------------


async def last_sent_seq(session: AsyncSession, job_id: uuid.UUID, *, dry_run: bool) -> int:
    last = await session.scalar(
        select(func.max(job_chunks.c.last_seq)).where(
            job_chunks.c.job_id == job_id, job_chunks.c.dry_run == dry_run
        )
    )
    return int(last) if last is not None else -1


async def chunk_count(session: AsyncSession, job_id: uuid.UUID, *, dry_run: bool) -> int:
    count = await session.scalar(
        select(func.count()).where(job_chunks.c.job_id == job_id, job_chunks.c.dry_run == dry_run)
    )
    return int(count or 0)


async def record_chunk(
    session: AsyncSession,
    job_id: uuid.UUID,
    *,
    chunk_no: int,
    dry_run: bool,
    first_seq: int,
    last_seq: int,
    entries: int,
) -> None:
    await session.execute(
        insert(job_chunks).values(
            job_id=job_id,
            chunk_no=chunk_no,
            dry_run=dry_run,
            first_seq=first_seq,
            last_seq=last_seq,
            entries=entries,
        )
    )


@dataclass(frozen=True, slots=True)
class SentChunk:
    job_id: uuid.UUID
    chunk_no: int
    dry_run: bool
    first_seq: int
    last_seq: int


async def answer_chunk(
    session: AsyncSession,
    job_id: uuid.UUID,
    chunk_no: int,
    *,
    dry_run: bool,
    rows_ok: int,
    rows_unchanged: int,
    rows_failed: int,
) -> bool:
    """Records a chunk's answer; False when it was answered before (an answer sent
    again after a resend) or the chunk is unknown: the caller then changes nothing."""
    result = await session.execute(
        update(job_chunks)
        .where(
            job_chunks.c.job_id == job_id,
            job_chunks.c.chunk_no == chunk_no,
            job_chunks.c.dry_run == dry_run,
            job_chunks.c.answered_at.is_(None),
        )
        .values(
            answered_at=func.now(),
            rows_ok=rows_ok,
            rows_unchanged=rows_unchanged,
            rows_failed=rows_failed,
        )
        .returning(job_chunks.c.chunk_no)
    )
    return result.first() is not None


async def overdue_chunks(
    session: AsyncSession, *, older_than_seconds: float, limit: int
) -> list[SentChunk]:
    """Chunks sent long ago and never answered, across jobs, oldest first."""
    result = await session.execute(
        select(
            job_chunks.c.job_id,
            job_chunks.c.chunk_no,
            job_chunks.c.dry_run,
            job_chunks.c.first_seq,
            job_chunks.c.last_seq,
        )
        .where(
            job_chunks.c.answered_at.is_(None),
            job_chunks.c.sent_at
            < func.now() - text(f"interval '{float(older_than_seconds)} seconds'"),
        )
        .order_by(job_chunks.c.sent_at)
        .limit(limit)
    )
    return [SentChunk(*row) for row in result.all()]


async def touch_chunk(session: AsyncSession, chunk: SentChunk) -> None:
    await session.execute(
        update(job_chunks)
        .where(
            job_chunks.c.job_id == chunk.job_id,
            job_chunks.c.chunk_no == chunk.chunk_no,
            job_chunks.c.dry_run == chunk.dry_run,
        )
        .values(sent_at=func.now())
    )


async def iter_errors(
    session: AsyncSession, job_id: uuid.UUID, *, batch: int = 5000
) -> AsyncIterator[list[tuple[int, str, str, str, str]]]:
    """The errors file's lines in row order, in batches (keyset: never one big result)."""
    after: tuple[int, int] = (-1, -1)
    while True:
        result = await session.execute(
            select(
                job_errors.c.row_no,
                job_errors.c.seq,
                job_errors.c.column_name,
                job_errors.c.code,
                job_errors.c.message,
                job_errors.c.value,
            )
            .where(
                job_errors.c.job_id == job_id,
                func.row(job_errors.c.row_no, job_errors.c.seq) > func.row(*after),
            )
            .order_by(job_errors.c.row_no, job_errors.c.seq)
            .limit(batch)
        )
        rows = result.all()
        if not rows:
            return
        yield [(r[0], r[2], r[3], r[4], r[5]) for r in rows]
        after = (rows[-1][0], rows[-1][1])
