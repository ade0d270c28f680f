"""Login throughput vs raw Argon2id verification, same parameters, same threads.

    uv run python scripts/bench_login.py [--seconds 15]

Starts the auth service alone (a throwaway database, its own key and prefixes),
logs in the bootstrap admin from concurrent clients for a fixed time, then
measures raw ``argon2.PasswordHasher.verify`` with the same parameters in a
pool of the same number of threads. The target is login/s >= 0.90 x raw
verifies/s: everything around the hash (HTTP, JSON, SQL, Redis limits, JWT
signing, the refresh-token row) must cost little next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import asyncpg
from argon2 import PasswordHasher, Type

sys.path.insert(0, str(Path(__file__).resolve().parent))
from localsuite import free_port, start_suite

EMAIL = "bench-admin@example.edu"
PASSWORD = "bench-admin-password"
SERVER = "postgresql://postgres@127.0.0.1:5432"


async def admin_sql(statement: str) -> None:
    conn = await asyncpg.connect(f"{SERVER}/postgres")
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


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


def raw_verify_rate(params: dict[str, int], threads: int, seconds: float) -> float:
    hasher = PasswordHasher(
        time_cost=params["time_cost"],
        memory_cost=params["memory_cost"],
        parallelism=params["parallelism"],
        type=Type.ID,
    )
    encoded = hasher.hash(PASSWORD)
    deadline = time.monotonic() + seconds

    def loop() -> int:
        count = 0
        while time.monotonic() < deadline:
            hasher.verify(encoded, PASSWORD)
            count += 1
        return count

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(lambda _: loop(), range(threads)))
    return total / (time.monotonic() - started)


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
    suite = start_suite(overrides, ports={"auth": port}, only={"auth"}, log_dir=tmp / "logs")
    try:
        url = f"http://127.0.0.1:{port}"
        concurrency = args.threads * 2  # keep every hashing thread busy, queue one behind
        asyncio.run(login_load(url, concurrency, 2.0))  # warm-up: pools, JIT-free caches
        ok, failed, latencies = asyncio.run(login_load(url, concurrency, args.seconds))
    finally:
        suite.stop()
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    login_rate = ok / args.seconds
    raw_rate = raw_verify_rate(params, args.threads, args.seconds)
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
    print(f"  raw PasswordHasher.verify    {raw_rate:8.1f} /s")
    ratio = login_rate / raw_rate if raw_rate else 0.0
    print(f"  login / raw = {ratio:.2f}  (target >= 0.90)")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
