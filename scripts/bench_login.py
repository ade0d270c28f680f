"""Login throughput vs raw Argon2id verification, same parameters, same threads.

    uv run python scripts/bench_login.py [--seconds 15]

Starts the auth service alone (a throwaway database, its own key and prefixes),
logs in the bootstrap admin from concurrent clients for a fixed time, then
measures raw ``argon2.PasswordHasher.verify`` with the same parameters in a
pool of the same number of threads. The target is login/s >= 0.90 x raw
verifies/s: everything around the hash (HTTP, JSON, SQL, Redis limits, JWT
signing, the refresh-token row) must cost little next to it.

On Linux it also reports where the CPU of a login goes (from /proc): the auth
process's event loop and its other threads (the Argon2 pool), this script's
load generator, and the rest of the machine (PostgreSQL, Redis, the kernel,
and anything else running). With both cores busy, login/raw is about
H / (H + X), H the CPU of one verify and X all the CPU of a login besides it.
The machine's CPU used outside this benchmark during the raw phase is shown
too: other work then distorts the ratio, so compare several runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import aiohttp
import asyncpg
from argon2 import PasswordHasher, Type

sys.path.insert(0, str(Path(__file__).resolve().parent))
from localsuite import free_port, start_suite

EMAIL = "bench-admin@example.edu"
PASSWORD = "bench-admin-password"
SERVER = "postgresql://postgres@127.0.0.1:5432"
BROKER = "amqp://guest:guest@127.0.0.1:5672/"


async def admin_sql(statement: str) -> None:
    conn = await asyncpg.connect(f"{SERVER}/postgres")
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def delete_exchange(name: str) -> None:
    """Deletes the run's events exchange (its queues expire on their own)."""
    connection = await aio_pika.connect(BROKER)
    try:
        channel = await connection.channel()
        await channel.exchange_delete(name)
    finally:
        await connection.close()


def _ticks_to_seconds(ticks: str) -> float:
    return int(ticks) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int) -> dict[int, float] | None:
    """User + system CPU of each thread of ``pid`` (Linux /proc), or None elsewhere."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    per_thread: dict[int, float] = {}
    for tid in tids:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        # Fields after the parenthesised name: utime and stime are the 12th and 13th.
        fields = stat.rsplit(")", 1)[1].split()
        per_thread[int(tid)] = _ticks_to_seconds(fields[11]) + _ticks_to_seconds(fields[12])
    return per_thread


def machine_busy_seconds() -> float | None:
    """CPU-seconds all cores spent on anything but idling since boot (Linux), or None."""
    try:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (
            Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
        )
    except (OSError, ValueError):
        return None
    return sum(_ticks_to_seconds(t) for t in (user, nice, system, irq, softirq, steal))


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


@dataclass(frozen=True)
class CpuSample:
    """CPU counters at one moment: the auth process's threads, this script, the machine."""

    auth_threads: dict[int, float] | None
    own: float
    machine: float | None

    @classmethod
    def take(cls, auth_pid: int) -> CpuSample:
        return cls(thread_cpu_seconds(auth_pid), own_cpu_seconds(), machine_busy_seconds())


def print_login_cpu(auth_pid: int, before: CpuSample, after: CpuSample, logins: int) -> None:
    """Milliseconds of CPU per login, by where they were spent."""
    if not logins or before.auth_threads is None or after.auth_threads is None:
        return
    per_login = 1000 / logins
    event_loop = after.auth_threads.get(auth_pid, 0.0) - before.auth_threads.get(auth_pid, 0.0)
    auth_total = sum(after.auth_threads.values()) - sum(before.auth_threads.values())
    load_generator = after.own - before.own
    print(
        f"  CPU per login: auth {auth_total * per_login:.2f} ms (event loop "
        f"{event_loop * per_login:.2f}, other threads incl. Argon2 "
        f"{(auth_total - event_loop) * per_login:.2f}), load generator "
        f"{load_generator * per_login:.2f} ms",
        end="",
    )
    if before.machine is not None and after.machine is not None:
        machine = after.machine - before.machine
        rest = machine - auth_total - load_generator
        print(
            f", rest of the machine (Postgres, Redis, kernel, others) {rest * per_login:.2f} ms;"
            f" all {machine * per_login:.2f} ms"
        )
    else:
        print()


async def login_load(url: str, concurrency: int, seconds: float) -> tuple[int, int, list[float]]:
    ok = failed = 0
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    body = {"email": EMAIL, "password": PASSWORD}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal ok, failed
            while time.monotonic() < deadline:
                started = time.perf_counter()
                async with session.post(f"{url}/api/v1/auth/login", json=body) as response:
                    await response.read()
                    if response.status == 200:
                        ok += 1
                        latencies.append(time.perf_counter() - started)
                    else:
                        failed += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok, failed, latencies


@dataclass(frozen=True)
class RawVerifies:
    rate: float
    cpu_per_verify: float
    # CPU-seconds the rest of the machine used meanwhile (None if unknown).
    others_busy: float | None


def raw_verify_rate(params: dict[str, int], threads: int, seconds: float) -> RawVerifies:
    hasher = PasswordHasher(
        time_cost=params["time_cost"],
        memory_cost=params["memory_cost"],
        parallelism=params["parallelism"],
        type=Type.ID,
    )
    encoded = hasher.hash(PASSWORD)
    deadline = time.monotonic() + seconds

    def loop() -> tuple[int, float]:
        count = 0
        cpu_started = time.thread_time()
        while time.monotonic() < deadline:
            hasher.verify(encoded, PASSWORD)
            count += 1
        return count, time.thread_time() - cpu_started

    machine_before, own_before = machine_busy_seconds(), own_cpu_seconds()
    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda _: loop(), range(threads)))
    elapsed = time.monotonic() - started
    machine_after, own_after = machine_busy_seconds(), own_cpu_seconds()
    total = sum(count for count, _ in results)
    others = (
        (machine_after - machine_before) - (own_after - own_before)
        if machine_before is not None and machine_after is not None
        else None
    )
    return RawVerifies(
        rate=total / elapsed,
        cpu_per_verify=sum(cpu for _, cpu in results) / total if total else float("nan"),
        others_busy=others,
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    params = {"memory_cost": 19_456, "time_cost": 2, "parallelism": 1}  # the OWASP minimum
    run_id = uuid.uuid4().hex[:8]
    database = f"bench_login_{run_id}"
    asyncio.run(admin_sql(f'CREATE DATABASE "{database}"'))
    tmp = Path(tempfile.mkdtemp(prefix="bench-login-"))
    port = free_port()
    overrides = {
        "ENVIRONMENT": "test",
        "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}",
        "REDIS_KEY_PREFIX": f"bench:{run_id}:",
        "QUEUE_PREFIX": f"bench-{run_id}.",
        "EVENTS_EXCHANGE": f"bench-{run_id}.events",
        "JWT_SIGNING_KEY_FILE": str(tmp / "jwt.pem"),
        "ADMIN_EMAIL": EMAIL,
        "ADMIN_PASSWORD": PASSWORD,
        "ARGON2_MEMORY_KIB": str(params["memory_cost"]),
        "ARGON2_TIME_COST": str(params["time_cost"]),
        "ARGON2_PARALLELISM": str(params["parallelism"]),
        "PASSWORD_HASH_WORKERS": str(args.threads),
        "LOGIN_MAX_ATTEMPTS_PER_IP": "1000000000",
        "LOG_LEVEL": "WARNING",
        "QUEUE_EXPIRES_SECONDS": "300",
    }
    try:
        suite = start_suite(overrides, ports={"auth": port}, only={"auth"}, log_dir=tmp / "logs")
        try:
            url = f"http://127.0.0.1:{port}"
            concurrency = args.threads * 2  # keep every hashing thread busy, queue one behind
            auth_pid = suite.process("auth").pid
            asyncio.run(login_load(url, concurrency, 2.0))  # warm-up: pools, JIT-free caches
            cpu_before = CpuSample.take(auth_pid)
            ok, failed, latencies = asyncio.run(login_load(url, concurrency, args.seconds))
            cpu_after = CpuSample.take(auth_pid)
        finally:
            suite.stop()
    except BaseException:
        print(f"the auth service's log is in {tmp / 'logs'}", file=sys.stderr)
        raise
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    finally:
        # Also when the service did not start: no database or exchange left behind.
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        asyncio.run(delete_exchange(overrides["EVENTS_EXCHANGE"]))
    login_rate = ok / args.seconds
    raw = raw_verify_rate(params, args.threads, args.seconds)
    raw_rate = raw.rate
    latencies.sort()
    p50 = statistics.median(latencies) * 1000 if latencies else float("nan")
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else float("nan")
    print(
        f"argon2id m={params['memory_cost']} KiB t={params['time_cost']} "
        f"p={params['parallelism']}, {args.threads} threads, {args.seconds:.0f} s each"
    )
    print(
        f"  login (HTTP, auth service)   {login_rate:8.1f} /s   p50 {p50:6.1f} ms   "
        f"p99 {p99:6.1f} ms   failures {failed}"
    )
    print_login_cpu(auth_pid, cpu_before, cpu_after, ok)
    print(
        f"  raw PasswordHasher.verify    {raw_rate:8.1f} /s   CPU per verify "
        f"{raw.cpu_per_verify * 1000:.2f} ms",
        end="",
    )
    if raw.others_busy is not None:
        print(f"   (meanwhile the rest of the machine used {raw.others_busy:.1f} CPU-s)")
    else:
        print()
    ratio = login_rate / raw_rate if raw_rate else 0.0
    print(f"  login / raw = {ratio:.2f}  (target >= 0.90)")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
