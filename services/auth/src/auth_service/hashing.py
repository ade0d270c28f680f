"""Argon2id off the event loop, in a bounded pool of threads.

One Argon2id verify at the OWASP parameters takes tens of milliseconds of CPU
and 19 MiB of memory; run on the event loop it would stall every other
request. argon2-cffi releases the GIL while hashing, so the threads really run
in parallel, and the pool size bounds both CPU and memory.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from auth_service.domain.passwords import Argon2idHasher, Argon2Params, Verification
from auth_service.metrics import PASSWORD_HASH_DURATION


class PasswordHashing:
    def __init__(self, params: Argon2Params, workers: int) -> None:
        self.params = params
        self._hasher = Argon2idHasher(params)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")

    def _timed_hash(self, password: str) -> str:
        started = time.perf_counter()
        try:
            return self._hasher.hash(password)
        finally:
            PASSWORD_HASH_DURATION.labels("hash").observe(time.perf_counter() - started)

    def _timed_verify(self, encoded: str | None, password: str) -> Verification:
        started = time.perf_counter()
        try:
            return self._hasher.verify(encoded, password)
        finally:
            PASSWORD_HASH_DURATION.labels("verify").observe(time.perf_counter() - started)

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._timed_hash, password
        )

    async def verify(self, encoded: str | None, password: str) -> Verification:
        """``encoded=None`` (no such user, or no password yet) burns the same time and fails."""
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._timed_verify, encoded, password
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
