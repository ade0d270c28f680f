"""Fallback load generator (used only when wrk is not installed).

A closed loop like wrk: CONNECTIONS aiohttp workers, each sending the next
request as soon as the previous answer arrived, for DURATION seconds. Prints
one JSON line: requests/s, p50 and p99 latency in ms, and non-2xx count.
Python is a much weaker load generator than wrk: figures from it understate
every target and are only comparable with each other.

Run: ``python scripts/bench/loadgen.py URL CONNECTIONS DURATION TOKEN``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp


async def main(url: str, connections: int, duration: float, token: str) -> None:
    latencies: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        deadline = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.get(url) as response:
                    await response.read()
                    if response.status >= 300:
                        errors += 1
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    n = len(latencies)
    print(
        json.dumps(
            {
                "rps": n / elapsed,
                "p50_ms": latencies[n // 2] * 1000 if n else 0.0,
                "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000 if n else 0.0,
                "non_2xx": errors,
                "requests": n,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]))
