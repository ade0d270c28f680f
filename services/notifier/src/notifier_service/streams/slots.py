"""How many live streams a user holds, across every replica (API.md: limited in number).

A Redis sorted set per user holds the open streams, each scored by when its
claim lapses; a stream renews its claim with every heartbeat and drops it
when it ends, so a replica that died without saying so frees its slots after
:attr:`StreamSlots.ttl_seconds`. Taking a slot is one Lua script: two
streams opened at once cannot both take the last slot. Redis being down
degrades the limit, never the stream: the slot is granted and logged.
"""

from __future__ import annotations

import logging
import time
import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# KEYS[1] the user's set; ARGV: now, claim expiry, stream id, max streams, key TTL (ms)
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
  return 1
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""


class StreamSlots:
    def __init__(
        self, redis: Redis, *, key_prefix: str, max_streams: int, ttl_seconds: float
    ) -> None:
        self._redis = redis
        self._prefix = key_prefix
        self._max = max_streams
        self.ttl_seconds = ttl_seconds
        self._take = redis.register_script(_TAKE)

    def _key(self, user_id: uuid.UUID) -> str:
        return f"{self._prefix}notifier:streams:{user_id}"

    async def take(self, user_id: uuid.UUID, stream_id: str) -> bool:
        """Claims (or renews) a slot for ``stream_id``; False when the user has them all."""
        now = time.time()
        try:
            taken = await self._take(
                keys=[self._key(user_id)],
                args=[
                    now,
                    now + self.ttl_seconds,
                    stream_id,
                    self._max,
                    int(self.ttl_seconds * 2000),
                ],
            )
        except (RedisError, OSError) as exc:
            log.warning("stream slots unavailable (%s): the limit is not enforced", exc)
            return True
        return bool(taken)

    async def release(self, user_id: uuid.UUID, stream_id: str) -> None:
        try:
            await self._redis.zrem(self._key(user_id), stream_id)
        except (RedisError, OSError) as exc:
            log.warning("could not release a stream slot (%s); it lapses by itself", exc)
