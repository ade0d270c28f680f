"""Rows of an uploaded file, read back from its stored parts as a stream.

CSV parts are fed to :class:`CsvReader` one at a time on the event loop (a
part is at most ``UPLOAD_PART_BYTES``, so no step blocks the loop for long).
An XLSX is a zip, read with random access: openpyxl runs in a thread on a
seekable file whose reads fetch parts from Postgres through the event loop,
keeping only a few parts in memory.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from service_kit.db import Database

from bulk_service.domain.csv_reading import CsvReader
from bulk_service.domain.jobs import FileFormat
from bulk_service.domain.sheets import ReadLimits, SheetRow
from bulk_service.domain.xlsx_reading import read_xlsx_rows
from bulk_service.store import files

XLSX_BATCH_ROWS = 2000
"""Rows the XLSX thread hands back at a time (one hop between threads per batch)."""
CSV_FEED_BYTES = 64 * 1024
"""Bytes of a CSV part parsed at a time. A whole part (``UPLOAD_PART_BYTES``, 1 MiB)
is up to ~60,000 rows of a long marks file; parsed at once, its rows and their
staged entries held ~70 MB more at the worker's peak (268 MB in the benchmark's
wide import, against ~133 MB idle)."""
CACHED_PARTS = 4
"""Parts an XLSX reader keeps: the central directory's and the sheet's current ones."""


@dataclass(frozen=True, slots=True)
class RowBatch:
    rows: list[SheetRow]
    bytes_read: int
    """How far into the file the reader is (for the progress bar)."""


async def _part(db: Database, job_id: uuid.UUID, part_no: int) -> bytes | None:
    async with db.read_session(fresh=True) as session:
        return await files.read_part(session, job_id, files.UPLOAD, part_no)


async def upload_rows(
    db: Database, job_id: uuid.UUID, file_format: FileFormat, size: int, limits: ReadLimits
) -> AsyncIterator[RowBatch]:
    """Every row of the upload (the header first), in batches; FileRejected if unreadable."""
    if file_format is FileFormat.CSV:
        async for batch in _csv_rows(db, job_id, limits):
            yield batch
    else:
        async for batch in _xlsx_rows(db, job_id, size, limits):
            yield batch


async def _csv_rows(db: Database, job_id: uuid.UUID, limits: ReadLimits) -> AsyncIterator[RowBatch]:
    reader = CsvReader(limits)
    part_no = 0
    while (data := await _part(db, job_id, part_no)) is not None:
        part_no += 1
        for start in range(0, len(data), CSV_FEED_BYTES):
            rows = reader.feed(data[start : start + CSV_FEED_BYTES])
            if rows:
                yield RowBatch(rows, reader.bytes_read)
        del data
    rows = reader.finish()
    yield RowBatch(rows, reader.bytes_read)


class PartsFile(io.RawIOBase):
    """A read-only, seekable file over an upload's parts, for a thread off the loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        db: Database,
        job_id: uuid.UUID,
        size: int,
        part_bytes: int,
    ) -> None:
        self._loop = loop
        self._db = db
        self._job_id = job_id
        self._size = size
        self._part_bytes = max(part_bytes, 1)
        self._position = 0
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self.furthest = 0
        """The furthest byte read: the sheet is read front to back, so this is progress."""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        else:
            position = self._size + offset
        if position < 0:
            raise OSError("negative seek position")
        self._position = position
        return position

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        wanted = len(buffer)
        done = 0
        while done < wanted and self._position < self._size:
            part_no, offset = divmod(self._position, self._part_bytes)
            part = self._get(part_no)
            piece = part[offset : offset + wanted - done]
            if not piece:
                break
            buffer[done : done + len(piece)] = piece
            done += len(piece)
            self._position += len(piece)
        self.furthest = max(self.furthest, self._position)
        return done

    def _get(self, part_no: int) -> bytes:
        cached = self._cache.get(part_no)
        if cached is not None:
            self._cache.move_to_end(part_no)
            return cached
        future = asyncio.run_coroutine_threadsafe(
            _part(self._db, self._job_id, part_no), self._loop
        )
        data = future.result() or b""
        self._cache[part_no] = data
        if len(self._cache) > CACHED_PARTS:
            self._cache.popitem(last=False)
        return data


async def _xlsx_rows(
    db: Database, job_id: uuid.UUID, size: int, limits: ReadLimits
) -> AsyncIterator[RowBatch]:
    first = await _part(db, job_id, 0) or b""
    source = PartsFile(asyncio.get_running_loop(), db, job_id, size, len(first) or 1)
    reader = io.BufferedReader(source, buffer_size=64 * 1024)
    rows: Iterator[SheetRow] = read_xlsx_rows(reader, limits)

    def next_batch() -> list[SheetRow]:
        batch: list[SheetRow] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= XLSX_BATCH_ROWS:
                break
        return batch

    try:
        while batch := await asyncio.to_thread(next_batch):
            yield RowBatch(batch, source.furthest)
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            await asyncio.to_thread(close)
