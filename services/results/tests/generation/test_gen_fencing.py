"""Fencing: a generation that is not the newest can never commit, however it got late.

The fault test stops a real lock holder (a subprocess) with SIGSTOP between
its compute and its write, long enough for its lease to expire and another
generation to take the lock and commit; then continues it. Figures are
printed; stale commits must be zero.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from gen_support import (
    assert_matches_domain,
    create_exam,
    create_students,
    expected_results,
    marks_of,
    mutate_entries,
    random_entries,
    read_results,
    scalar,
    write_marks,
)
from redis.asyncio import Redis
from results_service.domain import ExamRules, GradeBand, MarkEntry, MarkStatus, Subject
from results_service.generation import sql
from results_service.generation.runner import GenerationRunner, RunnerConfig
from results_service.settings import ResultsSettings
from service_kit.db import Database
from service_kit.lock import DistributedLock

D = Decimal
HOLDER = Path(__file__).with_name("paused_holder.py")
RULES = ExamRules(
    (Subject("A", D(100), D(40)), Subject("B", D(50), D(20), D(2)), Subject("C", D(20), D(8))),
    (GradeBand("A", D(80), D(4)), GradeBand("B", D(60), D(3)), GradeBand("F", D(0), D(0))),
    pass_percent=D(40),
)


async def _exam_with_marks(db: Database, students: int = 300) -> tuple[uuid.UUID, dict, list]:
    rng = random.Random(7)
    async with db.primary.connect() as conn:
        async with conn.begin():
            ids = await create_students(conn, [f"F{i:04d}" for i in range(students)])
            exam_id = await create_exam(conn, RULES)
        entries = random_entries(rng, RULES, list(ids))
        await write_marks(conn, exam_id, entries, ids)
    return exam_id, ids, entries


def _runner(
    db: Database, redis: Redis, settings: ResultsSettings, **config: object
) -> GenerationRunner:
    locks = DistributedLock(redis, key_prefix=f"{settings.redis_key_prefix}results:", name="exam")
    return GenerationRunner(db, locks, config=RunnerConfig(**config))  # type: ignore[arg-type]


@pytest.mark.fault
@pytest.mark.parametrize("cancel_on_loss", [False, True], ids=["fence-only", "cancel-on-loss"])
async def test_stale_lock_holder_cannot_overwrite_newer_generation(
    db: Database, redis: Redis, settings: ResultsSettings, cancel_on_loss: bool
) -> None:
    exam_id, ids, entries = await _exam_with_marks(db)
    runner = _runner(db, redis, settings, lease_seconds=5.0, lock_wait_seconds=0.5)
    await runner.ensure_fresh(exam_id)
    rng = random.Random(11)
    entries, upserts, deletes = mutate_entries(rng, RULES, entries, 0.2)
    async with db.primary.connect() as conn:
        await write_marks(conn, exam_id, upserts, ids, delete=deletes)

    lease = 1.0
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HOLDER),
        settings.database_url,
        settings.redis_url,
        settings.redis_key_prefix,
        str(exam_id),
        str(lease),
        "1" if cancel_on_loss else "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert holder.stdout is not None
    line = await asyncio.wait_for(holder.stdout.readline(), 60)
    assert line.startswith(b"COMPUTED"), line + (
        await holder.stderr.read() if holder.stderr else b""
    )
    os.kill(holder.pid, signal.SIGSTOP)
    paused_at = time.monotonic()
    stale_token = int(line.split()[1])
    try:
        # Marks change while the holder sleeps: its computed rows are now wrong.
        entries, upserts, deletes = mutate_entries(rng, RULES, entries, 0.2)
        async with db.primary.connect() as conn:
            await write_marks(conn, exam_id, upserts, ids, delete=deletes)
        started = time.monotonic()
        summary = await runner.ensure_fresh(exam_id, timeout_seconds=30)
        newer_waited = time.monotonic() - started
    finally:
        paused_for = time.monotonic() - paused_at
        os.kill(holder.pid, signal.SIGCONT)
    out, err = await asyncio.wait_for(holder.communicate(), 60)
    result = orjson.loads(out.strip().splitlines()[-1])

    stale_rows = await scalar(
        db,
        "SELECT count(*) FROM results.results WHERE exam_id = :e AND generation = :g",
        e=exam_id,
        g=stale_token,
    )
    stale_runs = await scalar(
        db,
        "SELECT count(*) FROM results.generation_runs WHERE exam_id = :e AND generation = :g",
        e=exam_id,
        g=stale_token,
    )
    fresh = await scalar(
        db, "SELECT results_version = marks_version FROM results.exams WHERE id = :e", e=exam_id
    )
    async with db.primary.connect() as conn:
        stored = await read_results(conn, exam_id)
        final_marks = await marks_of(conn, exam_id)
    print(
        f"\n[paused holder, {'cancel on lease loss' if cancel_on_loss else 'fence only'}] "
        f"lease {lease:.1f}s, holder paused {paused_for:.2f}s after computing with token "
        f"{stale_token}; newer generation {summary.generation} took the lock after "
        f"{newer_waited:.2f}s and committed; resumed holder outcome: {result['outcome']}; "
        f"stale commits: {stale_rows} rows, {stale_runs} runs"
    )
    assert result["token"] == stale_token
    assert summary.generation > stale_token
    assert stale_rows == 0 and stale_runs == 0  # stale commits = 0
    if cancel_on_loss:
        assert result["outcome"] in ("fenced", "lock_lost"), (result, err.decode()[-2000:])
    else:
        assert result["outcome"] == "fenced", (result, err.decode()[-2000:])
    assert fresh is True
    assert_matches_domain(stored, expected_results(RULES, final_marks), "after resume")
    assert_matches_domain(stored, expected_results(RULES, entries), "test's own marks")


async def test_fence_refuses_a_token_once_a_newer_one_is_issued(db: Database) -> None:
    """Without any lock: two generations interleave; only the newest token may write."""
    exam_id, _ids, _entries = await _exam_with_marks(db, students=50)
    async with db.primary.connect() as old_conn, db.primary.connect() as new_conn:
        old = await sql.issue_generation(old_conn, exam_id)
        old_computed = await sql.compute_results(old_conn, exam_id)
        new = await sql.issue_generation(new_conn, exam_id)
        new_computed = await sql.compute_results(new_conn, exam_id)
        async with old_conn.begin() as trans:
            refused = await sql.write_results(
                old_conn, old_computed, old, runner="old", collect=False
            )
            assert refused is None
            await trans.rollback()
        async with new_conn.begin():
            written = await sql.write_results(
                new_conn, new_computed, new, runner="new", collect=False
            )
        assert written is not None and written.generation == new > old
    generations = await scalar(
        db,
        "SELECT array_agg(DISTINCT generation) FROM results.results WHERE exam_id = :e",
        e=exam_id,
    )
    assert generations == [new]


async def test_marks_changed_during_generation_leave_the_exam_stale(
    db: Database, redis: Redis, settings: ResultsSettings
) -> None:
    """The generation records the marks_version of its own snapshot, not a later one."""
    exam_id, ids, _entries = await _exam_with_marks(db, students=40)
    written_meanwhile: list[int] = []

    async def write_during(_: uuid.UUID, token: int) -> None:
        async with db.primary.connect() as conn:
            version = await write_marks(
                conn, exam_id, [MarkEntry("F0001", "A", MarkStatus.PRESENT, D("99.99"))], ids
            )
        written_meanwhile.append(version)

    locks = DistributedLock(redis, key_prefix=f"{settings.redis_key_prefix}results:", name="exam")
    runner = GenerationRunner(db, locks, after_compute=write_during)
    async with db.primary.connect() as conn:
        before = await scalar(
            db, "SELECT marks_version FROM results.exams WHERE id = :e", e=exam_id
        )
        written = await runner.generate(conn, exam_id)
    assert written is not None
    state = await runner.state(exam_id)
    assert state.results_version == before
    assert state.marks_version == written_meanwhile[0] > before
    assert state.stale
    # The mark written meanwhile is not in these results...
    async with db.primary.connect() as conn:
        stored = {r.student_number: r for r in await read_results(conn, exam_id)}
    assert all(s["mark"] != D("99.99") for s in stored["F0001"].subjects if s["code"] == "A")
    # ...and the next generation picks it up.
    summary = await GenerationRunner(db, locks).ensure_fresh(exam_id)
    assert summary.results_version == written_meanwhile[0]
