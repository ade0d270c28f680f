"""Login throughput vs raw Argon2id verification, same parameters, same threads.

    uv run python scripts/bench_login.py [--seconds 10] [--rounds 3]

Starts the auth service alone (a throwaway database, its own key and prefixes),
then alternates, ``--rounds`` times: logging in the bootstrap admin from
concurrent clients for ``--seconds``, and raw ``argon2.PasswordHasher.verify``
with the same parameters in a pool of the same number of threads for as long
(the service idles meanwhile). The target is login/s >= 0.90 x raw
verifies/s: everything around the hash (HTTP, JSON, SQL, Redis limits, JWT
signing, the refresh-token row) must cost little next to it. Each round's
ratio compares two phases seconds apart, so a drift of the host's speed
(seen here: 25 to 39 ms of CPU per verify from one minute to the next) hits
both sides alike; the median round is the figure.

The load comes from wrk (installed with apt-get when missing, as for the
gateway benchmark): a load generator on the same two cores takes CPU from the
service it measures, ~0.05 ms per login for wrk against ~0.8 ms for a Python
client (the fallback, ``--python-client``).

On Linux it also reports where the CPU of a login goes (from /proc): the auth
process's event loop and its other threads (the Argon2 pool), the load
generator, and the rest of the machine (PostgreSQL, Redis, the kernel, and
anything else running). With both cores busy, login/raw is about H / (H + X),
H the CPU of one verify and X all the CPU of a login besides it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
from bench.wrk import ensure_packages, post_script, run_wrk
from localsuite import free_port, start_suite

EMAIL = "bench-admin@example.edu"
PASSWORD = "bench-admin-password"


def auth_alone_env(run_id: str, database: str, tmp: Path) -> dict[str, str]:
    """The environment of an auth process benchmarked alone: its own database, key,
    prefixes and admin, and no per-address sign-in limit (all load comes from here)."""
    return {
        "ENVIRONMENT": "test",
        "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}",
        "REDIS_KEY_PREFIX": f"bench:{run_id}:",
        "QUEUE_PREFIX": f"bench-{run_id}.",
        "EVENTS_EXCHANGE": f"bench-{run_id}.events",
        "JWT_SIGNING_KEY_FILE": str(tmp / "jwt.pem"),
        "ADMIN_EMAIL": EMAIL,
        "ADMIN_PASSWORD": PASSWORD,
        "LOGIN_MAX_ATTEMPTS_PER_IP": "1000000000",
        "LOG_LEVEL": "WARNING",
        "QUEUE_EXPIRES_SECONDS": "300",
    }


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
    """This script's CPU and its finished children's (wrk)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


@dataclass(frozen=True)
class CpuSample:
    """CPU counters at one moment: the auth process's threads, the load generator, the machine."""

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


@dataclass(frozen=True)
class LoginPhase:
    logins: int
    failures: int
    p50_ms: float
    p99_ms: float
    cpu_before: CpuSample
    cpu_after: CpuSample


def wrk_logins(
    wrk: str, url: str, script: Path, concurrency: int, seconds: float, auth_pid: int
) -> LoginPhase:
    before = CpuSample.take(auth_pid)
    result = run_wrk(
        wrk, f"{url}/api/v1/auth/login", connections=concurrency, seconds=seconds, script=script
    )
    after = CpuSample.take(auth_pid)
    ok = result.requests - result.non_2xx
    return LoginPhase(ok, result.non_2xx, result.p50_ms, result.p99_ms, before, after)


def python_logins(url: str, concurrency: int, seconds: float, auth_pid: int) -> LoginPhase:
    before = CpuSample.take(auth_pid)
    ok, failed, latencies = asyncio.run(login_load(url, concurrency, seconds))
    after = CpuSample.take(auth_pid)
    latencies.sort()
    p50 = statistics.median(latencies) * 1000 if latencies else float("nan")
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else float("nan")
    return LoginPhase(ok, failed, p50, p99, before, after)


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
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--rounds", type=int, default=3, help="login + raw rounds (median)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--concurrency", type=int, default=0, help="concurrent clients (default: 2 per thread)"
    )
    parser.add_argument("--python-client", action="store_true", help="aiohttp instead of wrk")
    parser.add_argument("--no-install", action="store_true", help="never call apt-get")
    args = parser.parse_args()
    wrk = None
    if not args.python_client:
        wrk = ensure_packages({"wrk": "wrk"}, install=not args.no_install)["wrk"]
    if wrk is None:
        print("load from the Python client: its CPU lowers the login figures")
    params = {"memory_cost": 19_456, "time_cost": 2, "parallelism": 1}  # the OWASP minimum
    run_id = uuid.uuid4().hex[:8]
    database = f"bench_login_{run_id}"
    asyncio.run(admin_sql(f'CREATE DATABASE "{database}"'))
    tmp = Path(tempfile.mkdtemp(prefix="bench-login-"))
    port = free_port()
    overrides = auth_alone_env(run_id, database, tmp) | {
        "ARGON2_MEMORY_KIB": str(params["memory_cost"]),
        "ARGON2_TIME_COST": str(params["time_cost"]),
        "ARGON2_PARALLELISM": str(params["parallelism"]),
        "PASSWORD_HASH_WORKERS": str(args.threads),
    }
    # Default: keep every hashing thread busy, with one request queued behind each.
    concurrency = args.concurrency or args.threads * 2
    script = post_script(tmp, json.dumps({"email": EMAIL, "password": PASSWORD}))
    rounds: list[tuple[LoginPhase, RawVerifies]] = []
    try:
        suite = start_suite(overrides, ports={"auth": port}, only={"auth"}, log_dir=tmp / "logs")
        try:
            url = f"http://127.0.0.1:{port}"
            auth_pid = suite.process("auth").pid

            def logins(seconds: float) -> LoginPhase:
                if wrk is not None:
                    return wrk_logins(wrk, url, script, concurrency, seconds, auth_pid)
                return python_logins(url, concurrency, seconds, auth_pid)

            logins(2.0)  # warm-up: pools, caches, the Lua script loaded into Redis
            for _ in range(args.rounds):
                phase = logins(args.seconds)
                rounds.append((phase, raw_verify_rate(params, args.threads, args.seconds)))
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
    print(
        f"argon2id m={params['memory_cost']} KiB t={params['time_cost']} "
        f"p={params['parallelism']}, {args.threads} threads, {concurrency} clients "
        f"({'wrk' if wrk else 'python'}), {args.rounds} rounds of {args.seconds:g} s + "
        f"{args.seconds:g} s"
    )
    ratios = []
    failures = 0
    for number, (phase, raw) in enumerate(rounds, 1):
        login_rate = phase.logins / args.seconds
        ratio = login_rate / raw.rate if raw.rate else 0.0
        ratios.append(ratio)
        failures += phase.failures
        print(
            f"round {number}: login {login_rate:6.1f}/s (p50 {phase.p50_ms:5.1f} ms, "
            f"p99 {phase.p99_ms:5.1f} ms, failures {phase.failures})   raw verify "
            f"{raw.rate:6.1f}/s ({raw.cpu_per_verify * 1000:.2f} ms CPU each"
            + (
                f", rest of the machine {raw.others_busy:.1f} CPU-s"
                if raw.others_busy is not None
                else ""
            )
            + f")   login/raw {ratio:.2f}"
        )
        print_login_cpu(auth_pid, phase.cpu_before, phase.cpu_after, phase.logins)
    median = statistics.median(ratios) if ratios else 0.0
    print(
        f"login / raw = {median:.2f} (median of {len(ratios)} rounds: "
        f"{' '.join(f'{r:.2f}' for r in ratios)})  (target >= 0.90)"
    )
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
