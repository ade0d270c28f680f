"""A notifier worker killed (SIGKILL) in the middle of a publication's fan-out: another
worker finishes it, and every student has exactly one notification — none missed,
none twice. Each chunk is one transaction with its inbox row, so a chunk is either
wholly stored or comes back from the broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from notifier_service.messaging.causes import CAUSES_QUEUE
from notifier_service.messaging.users import USERS_QUEUE
from notifier_service.settings import NotifierSettings
from notifier_support import (
    drop_broker_objects,
    eventually,
    execute,
    publish_event,
    published_event,
    rows,
    scalar,
)
from service_kit.db import Database
from service_kit.testing import free_port

ROOT = Path(__file__).resolve().parents[3]
CHUNKS = 12
PER_CHUNK = 500


def worker_env(settings: NotifierSettings) -> dict[str, str]:
    return {
        **os.environ,
        "ENVIRONMENT": "test",
        "LOG_JSON": "false",
        "DATABASE_URL": settings.database_url,
        "REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "QUEUE_PREFIX": settings.queue_prefix,
        "EVENTS_EXCHANGE": settings.events_exchange,
        "QUEUE_EXPIRES_SECONDS": "600",
        "AUTH_URL": settings.auth_url,
        # One message at a time, so the kill lands between chunks or inside one.
        "CONSUMER_PREFETCH": "1",
    }


class Workers:
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        port = free_port()
        log = (self.log_dir / f"worker-{len(self.processes)}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "notifier_service", "worker"],
            env={**self.env, "WORKER_PORT": str(port)},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"worker exited with {process.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    return process
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("worker did not become ready")

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@pytest.fixture
def workers(settings: NotifierSettings, tmp_path: Path) -> Iterator[Workers]:
    running = Workers(worker_env(settings), tmp_path)
    try:
        yield running
    finally:
        running.stop_all()


async def test_a_worker_killed_mid_fan_out_leaves_no_student_missed_or_twice(
    settings: NotifierSettings, db: Database, workers: Workers
) -> None:
    students = [uuid.uuid4() for _ in range(CHUNKS * PER_CHUNK)]
    # The read model knows them all (as after auth's user.created events).
    await execute(
        db,
        "INSERT INTO notifier.users (id, email, full_name, role, active, version) "
        "SELECT id, 's-' || id || '@example.edu', 'Student', 'student', true, 1 "
        "FROM unnest(CAST(:ids AS uuid[])) AS id",
        ids=students,
    )
    first = workers.start()
    try:
        exam = uuid.uuid4()
        for chunk in range(CHUNKS):
            part = students[chunk * PER_CHUNK : (chunk + 1) * PER_CHUNK]
            await publish_event(
                settings, "results.published", published_event(exam, part, chunk_no=chunk)
            )

        async def some_stored() -> bool:
            return int(await scalar(db, "SELECT count(*) FROM notifier.notifications")) > 0

        await eventually(some_stored, timeout=60)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        stored_at_kill = int(await scalar(db, "SELECT count(*) FROM notifier.notifications"))
        assert stored_at_kill % PER_CHUNK == 0  # whole chunks only
        assert stored_at_kill < len(students), "the kill came too late to prove anything"

        workers.start()

        async def all_stored() -> bool:
            count = int(await scalar(db, "SELECT count(*) FROM notifier.notifications"))
            return count >= len(students)

        await eventually(all_stored, timeout=120)
        per_user = await rows(
            db,
            "SELECT count(*) AS n, count(DISTINCT user_id) AS users FROM notifier.notifications",
        )
        assert (per_user[0]["n"], per_user[0]["users"]) == (len(students), len(students))
    finally:
        await drop_broker_objects(settings, [CAUSES_QUEUE, USERS_QUEUE])
