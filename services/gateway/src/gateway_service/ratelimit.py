"""Per-user rate limit over a fixed one-minute window, shared through Redis.

Two strategies (ADR 0003):

* :class:`BatchedRateLimiter` (default): each replica counts locally and adds
  its counts to the shared Redis counters every ``RATE_LIMIT_SYNC_MS`` in one
  pipeline, learning the cluster-wide totals back from ``INCRBY``. The request
  path touches only a dict, so Redis latency never reaches a request. The
  price: replicas learn each other's counts one sync late, so a user can exceed
  the limit by at most what they send in one sync interval per replica.
* :class:`ExactRateLimiter` (``RATE_LIMIT_SYNC_MS=0``): ``INCR`` + ``EXPIRE``
  pipelined on every request; exact, one Redis round trip per request.

Redis being down never fails a request: the limit fails open (the batched one
keeps enforcing each replica's own counts), and the failure is counted.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError
from service_kit.jobs import PeriodicJob

from gateway_service.metrics import RATE_LIMIT_STORE_ERRORS
from gateway_service.settings import GatewaySettings

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
# Keys outlive their window a little so a slow replica's late INCRBY still lands.
_KEY_TTL_SECONDS = WINDOW_SECONDS * 2
# After a Redis failure, wait this long before asking again: a dead Redis must
# not cost a connect timeout per request or per sync.
_BACKOFF_SECONDS = 2.0


class RateLimiter(Protocol):
    def periodic_jobs(self) -> list[PeriodicJob]:
        """Background work the limiter needs (run by the gateway's kit job runner)."""
        ...

    async def close(self) -> None: ...

    async def retry_after(self, user: str) -> int | None:
        """None when the call may go on, else seconds until the window resets."""
        ...


def _seconds_left(now: float) -> int:
    return max(1, math.ceil(WINDOW_SECONDS - now % WINDOW_SECONDS))


class _Count:
    __slots__ = ("pending", "shared")

    def __init__(self) -> None:
        self.shared = 0  # cluster-wide total as last learnt (plus our unsynced flushes)
        self.pending = 0  # admitted here since the last sync


class BatchedRateLimiter:
    def __init__(
        self, redis: Redis, key_prefix: str, limit: int, sync_interval_seconds: float
    ) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}ratelimit:"
        self._limit = limit
        self._interval = sync_interval_seconds
        self._window = -1
        self._counts: dict[str, _Count] = {}
        self._dirty: set[str] = set()
        self._skip_until = 0.0

    def periodic_jobs(self) -> list[PeriodicJob]:
        return [
            PeriodicJob("rate-limit-sync", self.sync_or_back_off, interval_seconds=self._interval)
        ]

    async def close(self) -> None:
        """A last sync, so counts admitted here since the last one are not lost."""
        with contextlib.suppress(RedisError, OSError):
            await self.sync()

    async def retry_after(self, user: str) -> int | None:
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        if window != self._window:
            # Unsynced counts of the old window are dropped with it: they could
            # only have refused requests in a window that is over.
            self._window = window
            self._counts = {}
            self._dirty = set()
        count = self._counts.get(user)
        if count is None:
            count = self._counts[user] = _Count()
        if count.shared + count.pending >= self._limit:
            return _seconds_left(now)
        count.pending += 1
        self._dirty.add(user)
        return None

    async def sync(self) -> None:
        """Adds local counts to Redis and learns the cluster-wide totals back."""
        if not self._dirty:
            return
        window, counts = self._window, self._counts
        batch = [(user, counts[user]) for user in self._dirty]
        self._dirty = set()
        flushed = []
        for _, count in batch:
            flushed.append(count.pending)
            count.shared += count.pending
            count.pending = 0
        pipe = self._redis.pipeline(transaction=False)
        for (user, _), amount in zip(batch, flushed, strict=True):
            key = f"{self._prefix}{window}:{user}"
            pipe.incrby(key, amount)
            pipe.expire(key, _KEY_TTL_SECONDS)
        replies = await pipe.execute()
        for (_, count), total in zip(batch, replies[::2], strict=True):
            count.shared = max(count.shared, int(total))

    async def sync_or_back_off(self) -> None:
        """:meth:`sync`, skipped for a while after a failure: a dead Redis must not cost
        a connect timeout per sync, and the limit meanwhile holds per replica."""
        if time.monotonic() < self._skip_until:
            return
        try:
            await self.sync()
        except (RedisError, OSError) as exc:
            RATE_LIMIT_STORE_ERRORS.inc()
            self._skip_until = time.monotonic() + _BACKOFF_SECONDS
            log.warning("rate-limit sync failed; limiting per replica", extra={"error": str(exc)})


class ExactRateLimiter:
    def __init__(self, redis: Redis, key_prefix: str, limit: int) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}ratelimit:"
        self._limit = limit
        self._skip_until = 0.0

    def periodic_jobs(self) -> list[PeriodicJob]:
        return []

    async def close(self) -> None:
        return None

    async def retry_after(self, user: str) -> int | None:
        now = time.time()
        if now < self._skip_until:
            return None
        key = f"{self._prefix}{int(now // WINDOW_SECONDS)}:{user}"
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, _KEY_TTL_SECONDS, nx=True)
            count, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            RATE_LIMIT_STORE_ERRORS.inc()
            self._skip_until = now + _BACKOFF_SECONDS
            log.warning("rate-limit check failed; failing open", extra={"error": str(exc)})
            return None
        if int(count) > self._limit:
            return _seconds_left(now)
        return None


class NoRateLimit:
    def periodic_jobs(self) -> list[PeriodicJob]:
        return []

    async def close(self) -> None:
        return None

    async def retry_after(self, user: str) -> int | None:
        return None


def rate_limiter_for(settings: GatewaySettings, redis: Redis) -> RateLimiter:
    """The strategy the settings ask for (RATE_LIMIT_PER_MINUTE=0 turns it off)."""
    if settings.rate_limit_per_minute == 0:
        return NoRateLimit()
    if settings.rate_limit_sync_ms == 0:
        return ExactRateLimiter(redis, settings.redis_key_prefix, settings.rate_limit_per_minute)
    return BatchedRateLimiter(
        redis,
        settings.redis_key_prefix,
        settings.rate_limit_per_minute,
        settings.rate_limit_sync_ms / 1000,
    )
