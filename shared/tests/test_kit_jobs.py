"""Periodic jobs: interval, failures, triggers, stop, and the once-across-replicas lease."""

from __future__ import annotations

import asyncio

import pytest
from kit_support import SCHEMA, wait_until
from prometheus_client import REGISTRY
from service_kit.db import Database
from service_kit.jobs import JobLeases, JobTrigger, PeriodicJob, PeriodicJobs
from sqlalchemy import text


def runs(job: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "periodic_job_runs_total", {"periodic_job": job, "outcome": outcome}
    )
    return value or 0.0


def last_success(job: str) -> float:
    value = REGISTRY.get_sample_value(
        "periodic_job_last_success_timestamp_seconds", {"periodic_job": job}
    )
    return value or 0.0


async def test_a_failing_run_is_counted_and_the_job_keeps_running(unique: str) -> None:
    name = f"flaky-{unique}"
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls % 2 == 1:
            raise RuntimeError("every other run fails")

    jobs = PeriodicJobs([PeriodicJob(name, flaky, interval_seconds=0.02, first_run_after=0)])
    assert last_success(name) == 0.0  # exported before the first success, so alerts see it
    jobs.start()
    try:
        await wait_until(lambda: calls >= 6, timeout=5)
    finally:
        await jobs.stop()
    assert runs(name, "failed") >= 3
    assert runs(name, "ok") >= 2
    assert last_success(name) > 0


async def test_a_failing_streak_is_logged_once_not_at_every_tick(
    unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A sub-second job failing while a dependency is down must not flood the logs."""
    down = True

    async def sync() -> None:
        if down:
            raise ConnectionError("auth is down")

    name = f"streak-{unique}"
    jobs = PeriodicJobs([PeriodicJob(name, sync, 0.01, jitter=0, first_run_after=0)])
    with caplog.at_level("INFO", logger="service_kit.jobs"):
        jobs.start()
        await wait_until(lambda: runs(name, "failed") >= 20)
        down = False
        await wait_until(lambda: runs(name, "ok") >= 1)
        await jobs.stop()

    failures = [r for r in caplog.records if "failed (" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert any("succeeded after" in r.getMessage() for r in caplog.records)


async def test_a_trigger_runs_the_job_before_its_interval(unique: str) -> None:
    trigger = JobTrigger()
    ran = asyncio.Event()

    async def work() -> None:
        ran.set()

    jobs = PeriodicJobs([PeriodicJob(f"hourly-{unique}", work, 3600, trigger=trigger)])
    jobs.start()
    try:
        await asyncio.sleep(0.05)
        assert not ran.is_set()
        trigger.fire()
        await asyncio.wait_for(ran.wait(), 2)
    finally:
        await jobs.stop()


async def test_stop_cancels_a_run_in_progress_and_waits_for_it(unique: str) -> None:
    started = asyncio.Event()
    cleaned_up = False

    async def long_run() -> None:
        nonlocal cleaned_up
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned_up = True

    name = f"long-{unique}"
    jobs = PeriodicJobs([PeriodicJob(name, long_run, 3600, first_run_after=0)])
    jobs.start()
    await asyncio.wait_for(started.wait(), 2)
    await asyncio.wait_for(jobs.stop(), 2)
    assert cleaned_up
    # A cancelled run is neither a success nor a failure.
    assert runs(name, "ok") == runs(name, "failed") == 0


def test_a_job_refuses_a_silly_declaration() -> None:
    async def work() -> None:
        return None

    with pytest.raises(ValueError, match="interval"):
        PeriodicJob("zero", work, interval_seconds=0)
    with pytest.raises(ValueError, match="jitter"):
        PeriodicJob("wild", work, interval_seconds=1, jitter=1.5)
    with pytest.raises(ValueError, match="needs leases"):
        PeriodicJobs([PeriodicJob("shared", work, 1, once_across_replicas=True)])


def test_jitter_spreads_the_waits() -> None:
    async def work() -> None:
        return None

    job = PeriodicJob("spread", work, interval_seconds=10, jitter=0.2, first_run_after=0.5)
    waits = [job.next_wait() for _ in range(200)]
    firsts = [job.next_wait(first=True) for _ in range(200)]
    assert 8 <= min(waits) < max(waits) <= 12
    assert len(set(waits)) > 100
    assert 4 <= min(firsts) <= max(firsts) <= 6


# -- once across replicas ------------------------------------------------------------------


async def test_two_replicas_never_run_a_leased_job_at_once(db: Database, unique: str) -> None:
    name = f"purge-{unique}"
    running = 0
    overlap = 0
    total = 0

    async def slow() -> None:
        nonlocal running, overlap, total
        running += 1
        total += 1
        overlap = max(overlap, running)
        await asyncio.sleep(0.15)
        running -= 1

    def replica() -> PeriodicJobs:
        job = PeriodicJob(
            name,
            slow,
            interval_seconds=0.05,
            jitter=0.5,
            first_run_after=0,
            once_across_replicas=True,
            lease_seconds=5,
        )
        return PeriodicJobs([job], leases=JobLeases(db, SCHEMA))

    replicas = [replica(), replica(), replica()]
    for jobs in replicas:
        jobs.start()
    try:
        await asyncio.sleep(1.5)
    finally:
        for jobs in replicas:
            await jobs.stop()
    assert overlap == 1
    assert total >= 3
    assert runs(name, "skipped") > 0


async def test_a_leased_job_runs_about_once_per_interval_across_replicas(
    db: Database, unique: str
) -> None:
    name = f"daily-{unique}"
    done = 0

    async def quick() -> None:
        nonlocal done
        done += 1

    one, two = JobLeases(db, SCHEMA, holder="one"), JobLeases(db, SCHEMA, holder="two")
    job = PeriodicJob(name, quick, interval_seconds=1, once_across_replicas=True)
    first, second = PeriodicJobs([job], leases=one), PeriodicJobs([job], leases=two)

    assert await first.run_once(name) is True
    # Due again only an interval after the last run ended, whoever asks.
    assert await second.run_once(name) is False
    assert await first.run_once(name) is False
    await asyncio.sleep(1.1)
    assert await second.run_once(name) is True
    assert done == 2


async def test_a_dead_holders_lease_expires(db: Database, unique: str) -> None:
    name = f"orphan-{unique}"
    dead = JobLeases(db, SCHEMA, holder="dead")
    alive = JobLeases(db, SCHEMA, holder="alive")
    # The holder claims and dies: it never renews nor releases.
    assert await dead.claim(name, lease_seconds=0.5) is True
    assert await alive.claim(name, lease_seconds=0.5) is False
    await asyncio.sleep(0.6)
    assert await alive.claim(name, lease_seconds=0.5) is True
    # The dead holder, back from a pause, cannot renew what it lost.
    assert await dead.renew(name, lease_seconds=0.5) is False


async def test_a_run_that_loses_its_lease_is_cancelled(db: Database, unique: str) -> None:
    name = f"paused-{unique}"
    cancelled = asyncio.Event()

    async def long_run() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    job = PeriodicJob(name, long_run, 3600, once_across_replicas=True, lease_seconds=0.6)
    jobs = PeriodicJobs([job], leases=JobLeases(db, SCHEMA, holder="paused"))
    run = asyncio.create_task(jobs.run_once(name))
    await asyncio.sleep(0.1)
    # Another replica took the lease over (as after an expiry while this one was paused).
    async with db.transaction() as session:
        await session.execute(
            text(f"UPDATE {SCHEMA}.job_leases SET holder = 'other' WHERE name = :name"),
            {"name": name},
        )
    assert await asyncio.wait_for(run, 3) is False
    assert cancelled.is_set()
    assert runs(name, "failed") == 1


def test_a_job_exports_its_interval_and_zero_runs_before_the_first(unique: str) -> None:
    async def work() -> None:
        return None

    PeriodicJobs([PeriodicJob(f"interval-{unique}", work, interval_seconds=42)])
    interval = REGISTRY.get_sample_value(
        "periodic_job_interval_seconds", {"periodic_job": f"interval-{unique}"}
    )
    assert interval == 42
    # Present from the start, so an alert's increase() sees the first failure.
    for outcome in ("ok", "failed"):
        value = REGISTRY.get_sample_value(
            "periodic_job_runs_total", {"periodic_job": f"interval-{unique}", "outcome": outcome}
        )
        assert value == 0
