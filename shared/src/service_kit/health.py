"""``/healthz`` (the process answers) and ``/readyz`` (its dependencies answer).

Readiness runs every registered check concurrently, each under a timeout, so a
hung dependency makes the pod unready in bounded time instead of hanging the
probe. Liveness never touches dependencies: a database outage must not get
every pod restarted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response

ReadinessCheck = Callable[[], Awaitable[object]]


class Readiness:
    """The named dependency checks of one process."""

    def __init__(self, timeout_seconds: float) -> None:
        self.timeout_seconds = timeout_seconds
        self._checks: dict[str, ReadinessCheck] = {}
        self._optional: set[str] = set()

    def add(self, name: str, check: ReadinessCheck, *, critical: bool = True) -> None:
        """Registers a check; a non-critical one is reported but never makes the pod unready.

        Use ``critical=False`` for a dependency the process degrades without (Redis
        for caches and limits): taking every pod out of the Service because Redis
        is down would turn a slowdown into an outage.
        """
        self._checks[name] = check
        if critical:
            self._optional.discard(name)
        else:
            self._optional.add(name)

    async def _run_one(self, check: ReadinessCheck) -> tuple[bool, str | None, float]:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(check(), self.timeout_seconds)
        except TimeoutError:
            return False, "timeout", time.perf_counter() - started
        except Exception as exc:
            return False, type(exc).__name__, time.perf_counter() - started
        return True, None, time.perf_counter() - started

    async def report(self) -> tuple[bool, dict[str, dict[str, object]]]:
        names = list(self._checks)
        outcomes = await asyncio.gather(*(self._run_one(self._checks[n]) for n in names))
        checks: dict[str, dict[str, object]] = {}
        for name, (ok, error, seconds) in zip(names, outcomes, strict=True):
            entry: dict[str, object] = {"ok": ok, "ms": round(seconds * 1000, 1)}
            if error:
                entry["error"] = error
            if name in self._optional:
                entry["critical"] = False
            checks[name] = entry
        ready = all(
            ok
            for name, (ok, _, _) in zip(names, outcomes, strict=True)
            if name not in self._optional
        )
        return ready, checks


async def healthz(_: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


async def readyz(request: Request) -> Response:
    readiness: Readiness = request.app.state.readiness
    ready, checks = await readiness.report()
    body = {"status": "ready" if ready else "unavailable", "checks": checks}
    return Response(
        orjson.dumps(body), status_code=200 if ready else 503, media_type="application/json"
    )
