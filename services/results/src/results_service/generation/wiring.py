"""Builds generation, publication and result-cache components from the process Runtime.

:func:`results_jobs` builds them once per :class:`~results_service.runtime.Runtime`
(HTTP routes and background services share one runner, so in-process callers
coalesce onto one attempt); the other functions are the extension points
:mod:`results_service.main` lists in ``CONSUMERS`` and ``BACKGROUND``.
"""

from __future__ import annotations

from dataclasses import dataclass

from service_kit.lock import DistributedLock
from service_kit.messaging.broker import EventBroker
from service_kit.messaging.consumer import EventConsumer

from results_service.cache import ResultsCache
from results_service.generation.autoregen import AutoRegenerator, DebounceBoard, register_autoregen
from results_service.generation.runner import GenerationRunner, RunnerConfig
from results_service.publication.scheduler import PublicationScheduler
from results_service.runtime import BackgroundService, Runtime
from results_service.settings import PRODUCER


@dataclass(frozen=True, slots=True)
class ResultsJobs:
    runner: GenerationRunner
    cache: ResultsCache
    regenerator: AutoRegenerator
    scheduler: PublicationScheduler


def build_results_jobs(runtime: Runtime) -> ResultsJobs:
    s = runtime.settings
    runner = GenerationRunner(
        runtime.db,
        DistributedLock(runtime.redis, key_prefix=f"{s.redis_key_prefix}results:", name="exam"),
        producer=PRODUCER,
        config=RunnerConfig(
            lease_seconds=s.generation_lock_lease_seconds,
            lock_wait_seconds=s.generation_lock_wait_seconds,
            timeout_seconds=s.generation_wait_seconds,
            work_mem=s.generation_work_mem,
        ),
    )
    board = DebounceBoard(
        runtime.redis, key_prefix=s.redis_key_prefix, delay_seconds=s.regeneration_debounce_seconds
    )
    return ResultsJobs(
        runner=runner,
        cache=ResultsCache(
            runtime.redis, key_prefix=s.redis_key_prefix, ttl_seconds=s.results_cache_ttl_seconds
        ),
        regenerator=AutoRegenerator(
            runtime.db,
            runner,
            board,
            sweep_seconds=s.regeneration_sweep_seconds,
            timeout_seconds=s.regeneration_timeout_seconds,
        ),
        scheduler=PublicationScheduler(
            runtime.db,
            runner,
            producer=PRODUCER,
            poll_seconds=s.publication_poll_seconds,
            regenerate_timeout_seconds=s.regeneration_timeout_seconds,
        ),
    )


def results_jobs(runtime: Runtime) -> ResultsJobs:
    """The process's components, built on first use."""
    if runtime.results_jobs is None:
        runtime.results_jobs = build_results_jobs(runtime)
    return runtime.results_jobs


def register_results_consumers(events: EventBroker, runtime: Runtime) -> EventConsumer:
    """``CONSUMERS`` entry: ``marks.changed`` -> the debounce board."""
    return register_autoregen(events, runtime.db, results_jobs(runtime).regenerator)


class _Stops:
    """Adapts a component whose stop must also close the shared runner."""

    def __init__(self, service: BackgroundService, runner: GenerationRunner) -> None:
        self._service = service
        self._runner = runner

    async def start(self) -> None:
        await self._service.start()

    async def stop(self) -> None:
        await self._service.stop()
        await self._runner.close()


def autoregen_service(runtime: Runtime) -> BackgroundService:
    """``BACKGROUND`` entry: drains the debounce board, sweeps for stale exams."""
    jobs = results_jobs(runtime)
    return _Stops(jobs.regenerator, jobs.runner)


def publication_scheduler(runtime: Runtime) -> BackgroundService:
    """``BACKGROUND`` entry: publishes due scheduled exams (once across replicas)."""
    return results_jobs(runtime).scheduler
