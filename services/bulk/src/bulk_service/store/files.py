"""A job's files (an upload, an export) stored as ordered parts in ``bulk.job_files``.

Any replica reads what any other wrote, and no file touches a local disk
(DESIGN.md flow 3). Parts are written as they fill and read one at a time, so
a file is never held whole in memory.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from bulk_service.store.tables import job_files

UPLOAD = "upload"
EXPORT = "export"


class PartWriter:
    """Collects bytes and writes them as parts of ``part_bytes`` in the session's
    transaction (the caller commits or rolls back the whole file)."""

    def __init__(
        self, session: AsyncSession, job_id: uuid.UUID, role: str, part_bytes: int
    ) -> None:
        self._session = session
        self._job_id = job_id
        self._role = role
        self._part_bytes = part_bytes
        self._buffer = bytearray()
        self._part_no = 0
        self.size = 0

    async def write(self, data: bytes) -> None:
        self._buffer += data
        self.size += len(data)
        while len(self._buffer) >= self._part_bytes:
            part = bytes(self._buffer[: self._part_bytes])
            del self._buffer[: self._part_bytes]
            await self._flush(part)

    async def close(self) -> None:
        if self._buffer:
            await self._flush(bytes(self._buffer))
            self._buffer.clear()

    async def _flush(self, part: bytes) -> None:
        await self._session.execute(
            insert(job_files).values(
                job_id=self._job_id, role=self._role, part_no=self._part_no, data=part
            )
        )
        self._part_no += 1


async def read_part(
    session: AsyncSession, job_id: uuid.UUID, role: str, part_no: int
) -> bytes | None:
    data = await session.scalar(
        select(job_files.c.data).where(
            job_files.c.job_id == job_id,
            job_files.c.role == role,
            job_files.c.part_no == part_no,
        )
    )
    return bytes(data) if data is not None else None


async def iter_parts(session: AsyncSession, job_id: uuid.UUID, role: str) -> AsyncIterator[bytes]:
    """The file's parts in order, one query each (one part in memory at a time)."""
    part_no = 0
    while True:
        data = await read_part(session, job_id, role, part_no)
        if data is None:
            return
        yield data
        part_no += 1


async def delete_file(session: AsyncSession, job_id: uuid.UUID, role: str) -> None:
    await session.execute(
        delete(job_files).where(job_files.c.job_id == job_id, job_files.c.role == role)
    )
