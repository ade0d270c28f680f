"""Read-your-writes with a replica: who wrote a moment ago reads from the primary.

After a user writes, :meth:`RecentWriters.mark` sets a short-lived Redis key
``{prefix}recent-writer:{user_id}``; list reads call
:meth:`RecentWriters.must_read_fresh` and pass the answer as ``fresh`` to
``Database.read_session``. Everyone else reads the replica (when configured).

Redis being down must never show a user a stale copy of their own write, so
every failure answers "fresh" (the primary): slower, never wrong.
"""

from __future__ import annotations

import logging
import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class RecentWriters:
    """Remembers, for a few seconds, which users wrote (longer than replica lag)."""

    def __init__(self, redis: Redis, *, key_prefix: str, ttl_seconds: int) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}recent-writer:"
        self._ttl = ttl_seconds

    def key(self, user_id: uuid.UUID) -> str:
        return f"{self._prefix}{user_id}"

    async def mark(self, user_id: uuid.UUID) -> None:
        """Call after the user's write committed."""
        try:
            await self._redis.set(self.key(user_id), b"1", ex=self._ttl)
        except (RedisError, OSError) as exc:
            # Not remembered: their next read may hit the replica. Reads still
            # fall back to the primary whenever Redis cannot answer, which is
            # the likely state right after this failure.
            log.warning("could not remember recent writer %s: %r", user_id, exc)

    async def must_read_fresh(self, user_id: uuid.UUID) -> bool:
        """True if the user wrote within the TTL, or if Redis cannot tell."""
        try:
            return bool(await self._redis.exists(self.key(user_id)))
        except (RedisError, OSError):
            return True
