"""A Redis lease lock per key, renewed while held, that tells its holder when it is lost.

::

    exam_locks = DistributedLock(redis, key_prefix=settings.redis_key_prefix, name="exam")
    async with exam_locks.hold(str(exam_id), lease_seconds=30, wait_seconds=5) as held:
        ...  # held.lost is set (and by default this block cancelled) if the lease is lost

The key holds a random token; renewal (``PEXPIRE``) and release (``DEL``) run
as Lua scripts that first compare the token, so a holder can never extend or
delete a lock that expired and was taken by someone else. A lease can still
be lost while its holder is paused (GC, network partition): a lock alone does
not make writes safe, which is why writers also check a fencing token in the
database (the results service's concern, not the kit's).
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import Counter, Gauge, Histogram
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

LOCK_WAIT = Histogram(
    "lock_wait_seconds",
    "Time spent acquiring a lock (or giving up), by lock name.",
    ["lock"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
LOCK_ACQUISITIONS = Counter(
    "lock_acquisitions_total",
    "Lock acquisition attempts by outcome: acquired, contended (acquired after "
    "waiting for another holder), timeout.",
    ["lock", "outcome"],
)
LOCK_LOST = Counter("lock_lost_total", "Leases lost while held.", ["lock"])
LOCK_LEASES_HELD = Gauge(
    "lock_leases_held", "Leases of a lock family this process holds now.", ["lock"]
)

# KEYS[1] = lock key, ARGV[1] = token, ARGV[2] = lease in ms
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class LockNotAcquired(Exception):
    """Another holder kept the lock for the whole wait."""


class LockLost(Exception):
    """The lease ended while the block still ran (expired, deleted or taken over)."""


class HeldLock:
    """One acquired lease; renewed in the background until released."""

    def __init__(
        self, owner: DistributedLock, key: str, redis_key: str, token: str, lease_seconds: float
    ) -> None:
        self.key = key
        self.redis_key = redis_key
        self.token = token
        self.lease_seconds = lease_seconds
        self.lost = asyncio.Event()
        self._owner = owner
        self._renewer: asyncio.Task[None] | None = None
        self._cancel_on_loss: asyncio.Task[object] | None = None
        self._cancelled_by_loss = False
        self._releasing = False

    def check(self) -> None:
        """Raises :class:`LockLost` if the lease is gone; call before a decisive write."""
        if self.lost.is_set():
            raise LockLost(self.key)

    def _start_renewing(self, cancel_on_loss: asyncio.Task[object] | None) -> None:
        self._cancel_on_loss = cancel_on_loss
        self._renewer = asyncio.create_task(self._renew_forever(), name=f"lock-renew-{self.key}")

    async def _renew_forever(self) -> None:
        lease_ms = max(1, round(self.lease_seconds * 1000))
        interval = self.lease_seconds / 3
        confirmed_until = time.monotonic() + self.lease_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                renewed = await self._owner._renew(
                    keys=[self.redis_key], args=[self.token, lease_ms]
                )
            except RedisError as exc:
                # Keep trying while the last renewal still covers us; after that
                # the key may have expired and been taken by someone else.
                if time.monotonic() + interval < confirmed_until:
                    log.warning("lock %s: renewal failed, retrying: %r", self.key, exc)
                    continue
                self._mark_lost(f"renewal failing: {exc!r}")
                return
            if not renewed:
                self._mark_lost("key expired or held by another token")
                return
            confirmed_until = time.monotonic() + self.lease_seconds

    def _mark_lost(self, why: str) -> None:
        log.error("lock %s lost: %s", self.key, why)
        LOCK_LOST.labels(self._owner.name).inc()
        self.lost.set()
        if self._releasing:
            return
        if self._cancel_on_loss is not None and not self._cancel_on_loss.done():
            self._cancelled_by_loss = True
            self._cancel_on_loss.cancel(f"lock {self.key} lost")

    async def release(self) -> bool:
        """Stops renewing and deletes the key if it is still ours; True if it was."""
        self._releasing = True
        if self._renewer is not None:
            self._renewer.cancel()
            # wait(), not await: our own cancellation must still propagate.
            await asyncio.wait([self._renewer])
            self._renewer = None
        LOCK_LEASES_HELD.labels(self._owner.name).dec()
        # Even after a detected loss: compare-and-delete never touches another
        # holder's key, and a key we still own must not linger for a lease.
        try:
            return bool(await self._owner._release(keys=[self.redis_key], args=[self.token]))
        except RedisError as exc:
            # The lease expires on its own; the next holder waits at most that long.
            log.warning("lock %s: release failed, left to expire: %r", self.key, exc)
            return False


class DistributedLock:
    """Lease locks named ``<key_prefix>lock:<name>:<key>`` in Redis."""

    def __init__(
        self,
        redis: Redis,
        *,
        key_prefix: str,
        name: str,
        max_poll_interval_seconds: float = 0.5,
    ) -> None:
        self.name = name
        self._redis = redis
        self._prefix = f"{key_prefix}lock:{name}:"
        self._max_poll = max_poll_interval_seconds
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        # Exported as 0 from the start: a contention or lost-lease alert needs
        # the series before the first event.
        for outcome in ("acquired", "contended", "timeout"):
            LOCK_ACQUISITIONS.labels(name, outcome)
        LOCK_LOST.labels(name)
        LOCK_LEASES_HELD.labels(name)

    def redis_key(self, key: str) -> str:
        return f"{self._prefix}{key}"

    async def acquire(
        self, key: str, lease_seconds: float, *, wait_seconds: float = 0.0
    ) -> HeldLock | None:
        """Takes the lock, waiting up to ``wait_seconds``; None if another holder kept it.

        The caller must :meth:`HeldLock.release` it; prefer :meth:`hold`.
        """
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        redis_key = self.redis_key(key)
        token = secrets.token_hex(16)
        lease_ms = max(1, round(lease_seconds * 1000))
        started = time.monotonic()
        deadline = started + wait_seconds
        delay = 0.01
        contended = False
        while not await self._redis.set(redis_key, token, nx=True, px=lease_ms):
            contended = True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                LOCK_WAIT.labels(self.name).observe(time.monotonic() - started)
                LOCK_ACQUISITIONS.labels(self.name, "timeout").inc()
                return None
            # Jittered exponential polling: waiters do not stampede on release.
            await asyncio.sleep(min(remaining, delay * (0.5 + random.random())))
            delay = min(delay * 2, self._max_poll)
        LOCK_WAIT.labels(self.name).observe(time.monotonic() - started)
        LOCK_ACQUISITIONS.labels(self.name, "contended" if contended else "acquired").inc()
        LOCK_LEASES_HELD.labels(self.name).inc()
        return HeldLock(self, key, redis_key, token, lease_seconds)

    @asynccontextmanager
    async def hold(
        self,
        key: str,
        lease_seconds: float,
        *,
        wait_seconds: float = 0.0,
        cancel_on_loss: bool = True,
    ) -> AsyncIterator[HeldLock]:
        """Holds the lock for the block, renewing it every third of the lease.

        Raises :class:`LockNotAcquired` if it cannot be taken within
        ``wait_seconds``. If the lease is lost, ``held.lost`` is set and, with
        ``cancel_on_loss``, the block is cancelled and :class:`LockLost` raised
        from it, so work under a lost lock stops at its next ``await``.
        """
        held = await self.acquire(key, lease_seconds, wait_seconds=wait_seconds)
        if held is None:
            raise LockNotAcquired(key)
        task = asyncio.current_task() if cancel_on_loss else None
        held._start_renewing(task)
        try:
            yield held
        except asyncio.CancelledError:
            if held._cancelled_by_loss and task is not None and task.uncancel() == 0:
                raise LockLost(key) from None
            raise
        finally:
            await held.release()
