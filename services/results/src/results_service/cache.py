"""Cache-aside in Redis for hot reads: results (JSON bodies) and exam definitions.

Keys carry what makes a value current, so there is nothing to invalidate: a
result is cached under ``<prefix>results:v1:result:<exam>:<generation>:<number>``
and a committed generation changes the exam's generation and with it every
key; an old key just expires (short TTL). There is no "delete on write", so no
race between a writer's delete and a reader's refill.

Redis being down or slow degrades speed, never correctness: every error is
caught and counted, the read falls through to PostgreSQL, and a breaker skips
Redis for a few seconds after an error, so a hung Redis does not add its
socket timeout to every request.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

CACHE_REQUESTS = Counter(
    "results_cache_requests_total",
    "Cache lookups by cache and outcome: hit, miss, error (Redis failed), bypass (breaker "
    "open after a recent error).",
    ["cache", "outcome"],
)
CACHE_WRITES = Counter(
    "results_cache_writes_total",
    "Cache fills by cache and outcome (ok, error).",
    ["cache", "outcome"],
)

_ERRORS = (RedisError, OSError, TimeoutError)


class ResultsCache:
    """Versioned cache-aside on one Redis; every method is failure-safe."""

    def __init__(
        self,
        redis: Redis,
        *,
        key_prefix: str,
        ttl_seconds: int = 60,
        breaker_seconds: float = 5.0,
    ) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}results:v1:"
        self._ttl = ttl_seconds
        self._breaker_seconds = breaker_seconds
        self._open_until = 0.0

    # -- keys --------------------------------------------------------------------------

    def result_key(self, exam_id: uuid.UUID, generation: int, student_number: str) -> str:
        return f"{self._prefix}result:{exam_id}:{generation}:{student_number}"

    def exam_key(self, exam_id: uuid.UUID, version: str) -> str:
        """An exam definition under a version that changes with it (e.g. marks_version and
        updated_at: every definition change bumps both)."""
        return f"{self._prefix}exam:{exam_id}:{version}"

    # -- operations --------------------------------------------------------------------

    def _available(self, cache: str, count: int) -> bool:
        if time.monotonic() < self._open_until:
            CACHE_REQUESTS.labels(cache, "bypass").inc(count)
            return False
        return True

    def _failed(self, what: str, exc: BaseException) -> None:
        self._open_until = time.monotonic() + self._breaker_seconds
        log.warning(
            "cache %s failed, reading through for %.0fs: %r", what, self._breaker_seconds, exc
        )

    async def get_many(self, cache: str, keys: Sequence[str]) -> list[bytes | None]:
        """Values of ``keys`` (None for a miss or when Redis cannot answer)."""
        if not keys:
            return []
        if not self._available(cache, len(keys)):
            return [None] * len(keys)
        try:
            raw = await self._redis.mget(list(keys))
        except _ERRORS as exc:
            CACHE_REQUESTS.labels(cache, "error").inc(len(keys))
            self._failed("read", exc)
            return [None] * len(keys)
        values = [v.encode() if isinstance(v, str) else v for v in raw]
        hits = sum(v is not None for v in values)
        CACHE_REQUESTS.labels(cache, "hit").inc(hits)
        CACHE_REQUESTS.labels(cache, "miss").inc(len(keys) - hits)
        return values

    async def get(self, cache: str, key: str) -> bytes | None:
        return (await self.get_many(cache, [key]))[0]

    async def put_many(self, cache: str, items: Mapping[str, str | bytes]) -> None:
        if not items or time.monotonic() < self._open_until:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(key, value, ex=self._ttl)
                await pipe.execute()
        except _ERRORS as exc:
            CACHE_WRITES.labels(cache, "error").inc(len(items))
            self._failed("write", exc)
            return
        CACHE_WRITES.labels(cache, "ok").inc(len(items))
