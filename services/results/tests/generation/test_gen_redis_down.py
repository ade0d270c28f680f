"""Redis stopped: every read still answers from PostgreSQL, generation stays correct.

The service runs against a throwaway redis-server on a free port, which the
test kills (SIGKILL) midway. Figures are printed; failed requests must be zero.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from gen_support import (
    assert_matches_domain,
    create_exam,
    create_students,
    expected_results,
    marks_of,
    metric_value,
    random_entries,
    random_mark,
    read_results,
    running_app,
    write_marks,
)
from redis.asyncio import Redis as AsyncRedis
from results_service.domain import ExamRules, GradeBand, MarkEntry, MarkStatus, Subject
from results_service.generation.autoregen import DebounceBoard
from results_service.settings import ResultsSettings
from results_support import Caller, JwtKeys, caller
from service_kit.db import Database
from sqlalchemy import text

D = Decimal
RULES = ExamRules(
    (Subject("A", D(100), D(40)), Subject("B", D(100), D(40))),
    (GradeBand("P", D(50), D(2)), GradeBand("F", D(0), D(0))),
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def throwaway_redis() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)
    try:
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(5)


@pytest.mark.fault
async def test_reads_and_generation_survive_redis_being_stopped(
    db: Database,
    settings: ResultsSettings,
    jwt_keys: JwtKeys,
    admin: Caller,
    throwaway_redis: tuple[subprocess.Popen[bytes], int],
) -> None:
    process, port = throwaway_redis
    settings = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"})
    me = caller(jwt_keys, settings, "student")
    rng = random.Random(3)
    async with db.primary.connect() as conn:
        async with conn.begin():
            ids = await create_students(conn, [f"R{i:03d}" for i in range(80)])
            await conn.execute(
                text("UPDATE results.students SET user_id = :u WHERE student_number = 'R000'"),
                {"u": me.user_id},
            )
            ids["R000"] = me.user_id
            exam_id = await create_exam(conn, RULES)
        await write_marks(conn, exam_id, random_entries(rng, RULES, list(ids)), ids)

    async with running_app(settings, jwt_keys) as (_, client):
        base = f"/api/v1/exams/{exam_id}"
        assert (
            await client.post(f"{base}/results/generate", headers=admin.headers)
        ).status_code == 200
        assert (await client.post(f"{base}/publish", headers=admin.headers)).status_code == 200
        reads = [
            (f"{base}/results", admin.headers),
            (f"{base}/results/R000", me.headers),
            (f"{base}/results/R001", admin.headers),
            ("/api/v1/me/results", me.headers),
        ]
        before = [(await client.get(url, headers=h)).content for url, h in reads]
        for url, h in reads:  # warm the cache
            await client.get(url, headers=h)

        process.kill()
        process.wait(5)
        killed_at = time.monotonic()

        failures = 0
        latencies: list[float] = []
        # Long enough for the cache breaker (5 s) to close and open again.
        while time.monotonic() - killed_at < 6:
            for (url, h), expected in zip(reads, before, strict=True):
                started = time.perf_counter()
                response = await client.get(url, headers=h)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200 or response.content != expected:
                    failures += 1

        # Marks change after publication; the generation runs without Redis.
        async with db.primary.connect() as conn:
            batch = [
                MarkEntry(n, s.code, MarkStatus.PRESENT, random_mark(rng, s))
                for n in rng.sample(list(ids), 20)
                for s in RULES.subjects
            ]
            await write_marks(conn, exam_id, batch, ids)
        started = time.perf_counter()
        generated = await asyncio.gather(
            *(client.post(f"{base}/results/generate", headers=admin.headers) for _ in range(3))
        )
        generation_seconds = time.perf_counter() - started
        after_generation = await client.get(f"{base}/results/R000", headers=me.headers)
        metrics = (await client.get("/metrics")).text
        outage = time.monotonic() - killed_at

    async with db.primary.connect() as conn:
        stored = await read_results(conn, exam_id)
        final_marks = await marks_of(conn, exam_id)
    errors = metric_value(metrics, "results_cache_requests_total", cache="result", outcome="error")
    bypass = metric_value(metrics, "results_cache_requests_total", cache="result", outcome="bypass")
    fallback = metric_value(
        metrics,
        "results_generation_lock_attempts_total",
        mode="postgres_fallback",
        outcome="acquired",
    )
    print(
        f"\n[Redis killed] {outage:.1f}s without Redis: {len(latencies)} reads, {failures} "
        f"failed, mean {1000 * sum(latencies) / len(latencies):.1f} ms, max "
        f"{1000 * max(latencies):.1f} ms; cache errors {errors:.0f}, breaker bypasses "
        f"{bypass:.0f}; 3 concurrent generate calls -> "
        f"{[r.status_code for r in generated]} in {generation_seconds:.2f}s using the "
        f"Postgres fallback lock {fallback:.0f}x"
    )
    assert failures == 0
    assert all(r.status_code == 200 for r in generated)
    assert after_generation.status_code == 200
    assert fallback >= 1
    assert errors + bypass > 0
    assert_matches_domain(stored, expected_results(RULES, final_marks), "without Redis")


async def test_debounce_board_falls_back_to_process_memory_without_redis(
    settings: ResultsSettings,
) -> None:
    dead = AsyncRedis.from_url(f"redis://127.0.0.1:{_free_port()}/0", socket_connect_timeout=0.2)
    board = DebounceBoard(dead, key_prefix=settings.redis_key_prefix, delay_seconds=0.2)
    exam_id = uuid.uuid4()
    try:
        await board.touch(exam_id)
        assert await board.pop_due() == []  # debounced
        await asyncio.sleep(0.25)
        assert await board.pop_due() == [exam_id]
        assert await board.pop_due() == []
    finally:
        await dead.aclose()
