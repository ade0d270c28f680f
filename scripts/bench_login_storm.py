"""A sign-in storm at one auth process: what is served, what is shed, how fast the probes stay.

    uv run python scripts/bench_login_storm.py [--seconds 10] [--factor 3] [--budgets 1.0]

Starts the auth service alone (a throwaway database, its own key and
prefixes; Argon2id at the OWASP minimum, ``--workers`` hashing threads), then
for each budget in ``--budgets`` (``PASSWORD_HASH_QUEUE_BUDGET_SECONDS``; 0
means no admission, the behaviour before ADR 0020) runs two phases of
``--seconds``:

- quiet: ``/readyz``, ``/api/v1/auth/me`` and a refresh are each called every
  100 ms, nothing else;
- storm: the same, plus sign-ins sent open-loop (arrivals do not wait for
  answers) at ``--factor`` times the rate the hashing threads sustain
  (threads / the time of one verify, measured first in this process).

It prints sign-ins served per second, the share shed (503), the p50/p99 of
the served sign-ins, and the p50/p99/max of the three polled calls in each
phase. The load comes from one aiohttp client in this process; no request
carries a timeout shorter than 30 s, so a slow answer shows as slow, never as
a failure. Each budget restarts the service (a fresh moving average).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from argon2 import PasswordHasher, Type

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_login import EMAIL, PASSWORD, admin_sql, auth_alone_env, delete_exchange
from localsuite import free_port, start_suite


def verify_seconds(rounds: int = 10) -> float:
    hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1, type=Type.ID)
    encoded = hasher.hash(PASSWORD)
    started = time.perf_counter()
    for _ in range(rounds):
        hasher.verify(encoded, PASSWORD)
    return (time.perf_counter() - started) / rounds


@dataclass
class Calls:
    seconds: list[float] = field(default_factory=list)
    failures: int = 0

    def summary(self) -> str:
        if not self.seconds:
            return f"no answers, {self.failures} failures"
        ordered = sorted(self.seconds)
        p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
        return (
            f"p50 {statistics.median(ordered) * 1000:6.1f} ms  p99 {p99 * 1000:6.1f} ms  "
            f"max {ordered[-1] * 1000:6.1f} ms  ({len(ordered)} calls, {self.failures} failed)"
        )


async def poll(
    session: aiohttp.ClientSession, call: str, url: str, token: dict[str, str], stop: asyncio.Event
) -> Calls:
    calls = Calls()
    while not stop.is_set():
        started = time.perf_counter()
        if call == "readyz":
            request = session.get(f"{url}/readyz")
        elif call == "me":
            request = session.get(
                f"{url}/api/v1/auth/me", headers={"Authorization": f"Bearer {token['access']}"}
            )
        else:
            request = session.post(
                f"{url}/api/v1/auth/refresh", json={"refresh_token": token["refresh"]}
            )
        async with request as response:
            body = await response.json()
            if response.status == 200:
                calls.seconds.append(time.perf_counter() - started)
                if call == "refresh":
                    token["refresh"] = body["refresh_token"]
            else:
                calls.failures += 1
        await asyncio.sleep(0.1)
    return calls


@dataclass
class Storm:
    served: list[float] = field(default_factory=list)
    shed: int = 0
    other: int = 0
    # From the first sign-in sent to the last answered.
    seconds: float = 0.0


async def phase(url: str, seconds: float, rate: float) -> tuple[Storm, dict[str, Calls]]:
    timeout = aiohttp.ClientTimeout(total=30)
    body = {"email": EMAIL, "password": PASSWORD}
    async with aiohttp.ClientSession(
        timeout=timeout, connector=aiohttp.TCPConnector(limit=0)
    ) as session:
        async with session.post(f"{url}/api/v1/auth/login", json=body) as response:
            pair = await response.json()
        token = {"access": pair["access_token"], "refresh": pair["refresh_token"]}
        stop = asyncio.Event()
        # Each poller on a connection pool of its own, as a kubelet or another client.
        own = [aiohttp.ClientSession(timeout=timeout) for _ in range(3)]
        pollers = [
            asyncio.create_task(poll(s, call, url, token, stop))
            for s, call in zip(own, ("readyz", "me", "refresh"), strict=True)
        ]
        storm = Storm()

        async def login() -> None:
            started = time.perf_counter()
            try:
                async with session.post(f"{url}/api/v1/auth/login", json=body) as response:
                    await response.read()
            except (TimeoutError, aiohttp.ClientError):
                storm.other += 1
                return
            if response.status == 200:
                storm.served.append(time.perf_counter() - started)
            elif response.status == 503 and int(response.headers["Retry-After"]) >= 1:
                storm.shed += 1
            else:
                storm.other += 1

        sent: list[asyncio.Task[None]] = []
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            while len(sent) < elapsed * rate:
                sent.append(asyncio.create_task(login()))
            await asyncio.sleep(0.002)
        await asyncio.gather(*sent)
        storm.seconds = time.monotonic() - started
        stop.set()
        results = await asyncio.gather(*pollers)
        for s in own:
            await s.close()
    return storm, dict(zip(("readyz", "me", "refresh"), results, strict=True))


def report(title: str, storm: Storm, calls: dict[str, Calls]) -> None:
    print(f"  {title}")
    total = len(storm.served) + storm.shed + storm.other
    if total:
        ordered = sorted(storm.served)
        p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)] if ordered else float("nan")
        p50 = statistics.median(ordered) if ordered else float("nan")
        print(
            f"    sign-ins: {total} sent, {len(storm.served) / storm.seconds:.1f}/s served "
            f"over {storm.seconds:.1f} s, "
            f"{storm.shed / total:.0%} shed, {storm.other} other; served p50 "
            f"{p50 * 1000:.0f} ms p99 {p99 * 1000:.0f} ms"
        )
    for name, result in calls.items():
        print(f"    {name:8} {result.summary()}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--factor", type=float, default=3.0, help="x the sustainable rate")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--budgets", default="1.0", help="comma-separated; 0 = no admission")
    args = parser.parse_args()
    per_verify = verify_seconds()
    sustainable = args.workers / per_verify
    rate = args.factor * sustainable
    print(
        f"argon2id m=19456 KiB t=2 p=1: {per_verify * 1000:.1f} ms per verify here; "
        f"{args.workers} threads sustain ~{sustainable:.0f} sign-ins/s; storm {rate:.0f}/s "
        f"for {args.seconds:g} s"
    )
    for budget_text in args.budgets.split(","):
        budget = float(budget_text)
        run_id = uuid.uuid4().hex[:8]
        database = f"bench_storm_{run_id}"
        asyncio.run(admin_sql(f'CREATE DATABASE "{database}"'))
        tmp = Path(tempfile.mkdtemp(prefix="bench-storm-"))
        port = free_port()
        overrides = auth_alone_env(run_id, database, tmp) | {
            "PASSWORD_HASH_WORKERS": str(args.workers),
            # 0: no admission (a budget and a cap no storm reaches).
            "PASSWORD_HASH_QUEUE_BUDGET_SECONDS": str(budget or 1e9),
            "PASSWORD_HASH_MAX_QUEUE": "128" if budget else "1000000000",
        }
        try:
            suite = start_suite(overrides, ports={"auth": port}, only={"auth"})
            try:
                url = f"http://127.0.0.1:{port}"
                print(f"budget {budget:g} s" if budget else "no admission")
                report("quiet", *asyncio.run(phase(url, args.seconds, 0.0)))
                report("storm", *asyncio.run(phase(url, args.seconds, rate)))
            finally:
                suite.stop()
        finally:
            asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            asyncio.run(delete_exchange(overrides["EVENTS_EXCHANGE"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
