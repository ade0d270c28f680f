"""results' internal endpoints, as bulk calls them with its service token.

- ``GET /internal/exams/{id}``: an exam's code, name, status and subjects
  (uploads answer 404 for an unknown exam; wide files and templates need the
  subject codes; local checks need the max marks).
- ``GET /internal/exams/{id}/results.ndjson``: every result, one JSON object
  per line, streamed (exports).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import httpx

from bulk_service.domain.marks_file import ExamSubject

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ExamInfo:
    id: uuid.UUID
    code: str
    name: str
    status: str
    subjects: tuple[ExamSubject, ...]


class ResultsUnavailable(Exception):
    """results could not be asked (down, too slow, or answered 5xx)."""


class ResultsClient:
    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        self._http = http
        self._base = base_url.rstrip("/")

    async def exam(
        self, exam_id: uuid.UUID, *, fresh: bool = False, patience_seconds: float = 0.0
    ) -> ExamInfo | None:
        """The exam, or None when results does not know it.

        With ``patience_seconds`` (a worker, not a request) an unreachable results is
        asked again with growing pauses for that long: a results rollout or a short
        outage delays a job instead of failing it.
        """
        deadline = time.monotonic() + patience_seconds
        pause = 0.5
        while True:
            try:
                return await self._exam_once(exam_id, fresh=fresh)
            except ResultsUnavailable:
                if time.monotonic() + pause > deadline:
                    raise
                log.warning("results unreachable; asking again in %.1f s", pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 15.0)

    async def _exam_once(self, exam_id: uuid.UUID, *, fresh: bool) -> ExamInfo | None:
        try:
            response = await self._http.get(
                f"{self._base}/internal/exams/{exam_id}", params={"fresh": str(fresh).lower()}
            )
        except httpx.HTTPError as exc:
            raise ResultsUnavailable(str(exc)) from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ResultsUnavailable(f"results answered {response.status_code}")
        body = response.json()
        return ExamInfo(
            id=uuid.UUID(body["id"]),
            code=body["code"],
            name=body["name"],
            status=body["status"],
            subjects=tuple(
                ExamSubject(code=s["code"], max_mark=Decimal(str(s["max_mark"])))
                for s in body["subjects"]
            ),
        )

    async def result_line_batches(self, exam_id: uuid.UUID) -> AsyncIterator[list[bytes]]:
        """Every result of the exam as NDJSON lines (bytes, without the newline), a batch
        per piece of the HTTP body: the lines complete in it, blank ones left out."""
        try:
            async with self._http.stream(
                "GET",
                f"{self._base}/internal/exams/{exam_id}/results.ndjson",
                params={"fresh": "true"},
            ) as response:
                if response.status_code == 404:
                    raise ResultsUnavailable("results does not know the exam any more")
                if response.status_code != 200:
                    raise ResultsUnavailable(f"results answered {response.status_code}")
                pending = b""
                async for data in response.aiter_bytes():
                    lines = (pending + data).split(b"\n") if pending else data.split(b"\n")
                    pending = lines.pop()
                    batch = [line for line in lines if line.strip()]
                    if batch:
                        yield batch
                if pending.strip():
                    yield [pending]
        except httpx.HTTPError as exc:
            raise ResultsUnavailable(str(exc)) from exc
