"""Argon2id off the event loop, in a bounded pool of threads, with bounded admission.

One Argon2id verify at the OWASP parameters takes tens of milliseconds of CPU
and 19 MiB of memory; run on the event loop it would stall every other
request. argon2-cffi releases the GIL while hashing, so the threads really run
in parallel, and the pool size bounds both CPU and memory.

Admission (docs/adr/0020): a caller that names an ``operation`` (sign-in,
password change, reset, user creation) is refused at once with 503
``UPSTREAM_UNAVAILABLE`` and ``Retry-After`` when the hashes already waiting or
running would make it wait longer than the budget (their count / the pool
size x a moving average of one hash), or when that count reached the hard cap;
it then costs no hashing at all. Callers that must not be dropped (the user
import consumer, the first admin's bootstrap, the follow-up hash of an
admitted password change) pass no operation and wait their turn; they still
count in the queue the next sign-in sees. Nothing here ever runs Argon2 on the
event loop, so probes, refreshes and reads never wait behind hashing.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from service_kit.errors import UpstreamUnavailable

from auth_service.domain.passwords import Argon2idHasher, Argon2Params, Verification
from auth_service.metrics import (
    PASSWORD_HASH_DURATION,
    PASSWORD_HASH_IN_FLIGHT,
    PASSWORD_HASH_QUEUE_WAIT,
    PASSWORD_HASH_SHED,
)

T = TypeVar("T")

# Weight of the newest duration in the moving average: ~20 hashes of memory,
# quick to follow a slower host, not thrown by one preempted hash.
_EWMA_WEIGHT = 0.1


@dataclass(frozen=True, slots=True)
class HashAdmission:
    """How much hashing may queue: a wait budget and a hard cap on the queue."""

    budget_seconds: float
    max_queue: int


class HashingOverloaded(UpstreamUnavailable):
    """503 ``UPSTREAM_UNAVAILABLE``: too many hashes queued to serve this one in time."""

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(
            "Too many sign-ins and password changes right now; try again in a few seconds.",
            retry_after_seconds=retry_after_seconds,
        )


class PasswordHashing:
    def __init__(
        self,
        params: Argon2Params,
        workers: int,
        admission: HashAdmission | None = None,
    ) -> None:
        self.params = params
        self.workers = workers
        self._admission = admission or HashAdmission(budget_seconds=math.inf, max_queue=1 << 30)
        self._hasher = Argon2idHasher(params)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        # Hashes submitted and not finished (waiting for a thread or running).
        # Only touched on the event loop, so no lock.
        self._in_flight = 0
        # Moving average of one hash's duration (seconds); None until one finished.
        self._mean_seconds: float | None = None

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def estimated_wait(self) -> float:
        """Seconds a hash submitted now would wait: queued or running ahead / pool x mean."""
        if self._mean_seconds is None:
            return 0.0
        return self._in_flight / self.workers * self._mean_seconds

    def over_budget(self) -> bool:
        """True when an admitted call submitted now would be refused."""
        return (
            self.estimated_wait() > self._admission.budget_seconds
            or self._in_flight >= self._admission.max_queue
        )

    def admit(self, operation: str) -> None:
        """Raises :class:`HashingOverloaded` (counted) if ``operation`` would be refused now.

        For a call to refuse early, before the work that leads to its hash (the
        hash itself is admitted again when submitted).
        """
        self._admit(operation)

    def _admit(self, operation: str) -> None:
        if not self.over_budget():
            return
        wait = self.estimated_wait()
        PASSWORD_HASH_SHED.labels(operation).inc()
        # The queue ahead drains in about `wait`; at least a second, as RFC 9110 counts.
        raise HashingOverloaded(max(1, math.ceil(wait)))

    def _timed(self, kind: str, submitted: float, work: Callable[[], T]) -> tuple[T, float]:
        """Runs in a pool thread: ``work()`` and its duration (queueing excluded)."""
        started = time.perf_counter()
        PASSWORD_HASH_QUEUE_WAIT.observe(started - submitted)
        try:
            return work(), time.perf_counter() - started
        finally:
            PASSWORD_HASH_DURATION.labels(kind).observe(time.perf_counter() - started)

    def _finished(self, _: object) -> None:
        self._in_flight -= 1
        PASSWORD_HASH_IN_FLIGHT.dec()

    def _finished_soon(self, loop: asyncio.AbstractEventLoop, done: object) -> None:
        """Done callback (in a pool thread): frees the place on the event loop."""
        # RuntimeError: the loop is closed, the service is stopping.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._finished, done)

    async def _run(self, kind: str, operation: str | None, work: Callable[[], T]) -> T:
        if operation is not None:
            self._admit(operation)
        loop = asyncio.get_running_loop()
        self._in_flight += 1
        PASSWORD_HASH_IN_FLIGHT.inc()
        job = self._pool.submit(self._timed, kind, time.perf_counter(), work)
        # The place in the queue is freed when the hash ends (or is cancelled before it
        # started), not when its caller stops waiting: a caller that went away leaves a
        # hash that still occupies a thread.
        job.add_done_callback(partial(self._finished_soon, loop))
        result, seconds = await asyncio.wrap_future(job)
        mean = self._mean_seconds
        self._mean_seconds = seconds if mean is None else mean + _EWMA_WEIGHT * (seconds - mean)
        return result

    async def hash(self, password: str, *, operation: str | None = None) -> str:
        """A new encoded hash; ``operation`` names an admitted call (see the module)."""
        return await self._run("hash", operation, lambda: self._hasher.hash(password))

    async def verify(
        self, encoded: str | None, password: str, *, operation: str | None = None
    ) -> Verification:
        """``encoded=None`` (no such user, or no password yet) burns the same time and fails."""
        return await self._run("verify", operation, lambda: self._hasher.verify(encoded, password))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
