"""Benchmark of the gateway's proxy path, against a direct call and nginx.

Run: ``uv run python scripts/bench_gateway.py`` (about five minutes; loopback only).

It starts everything itself on free loopback ports and stops it afterwards:
a small fast upstream (``scripts/bench/upstream.py``: pure ASGI on uvicorn,
an authenticated GET answering ~150 bytes of JSON and serving the JWKS), nginx
as a reverse proxy with a keep-alive upstream pool, and the gateway twice
(JWT verification on, and off through the bench-only ``GATEWAY_JWT_REQUIRED=false``),
plus the gateway with the exact per-request Redis rate limit and with two
worker processes for comparison. Besides requests/s and latency it reports the
CPU time the proxy process itself spent per request, a figure that other load
on the machine disturbs far less than throughput.
Load comes from ``wrk --latency`` at 32 connections (installed with apt-get
when missing and running as root; otherwise a Python aiohttp load generator,
``scripts/bench/loadgen.py``, which understates every figure). Each variant is
measured ``--rounds`` times, interleaved, and the median is reported.

Finally it compares HTTP clients on the proxy's upstream leg: the gateway's
own client (``gateway_service.proxy.client``, ADR 0008), aiohttp's
ClientSession and httpx's AsyncClient, each with 32 concurrent requests to the
same upstream for a few seconds, with the CPU each spends per request.

Targets: gateway >= 0.30x nginx requests/s with p99 <= 30 ms; JWT on/off >= 0.90.
Redis (127.0.0.1:6379) is used when it runs; without it the rate limit fails
open, as it does in production.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import jwt
import uvloop
from bench.wrk import ensure_packages
from bench.wrk import run_wrk as wrk_run
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gateway_service.proxy.client import ExchangeTimeouts, UpstreamClient
from gateway_service.proxy.pool import Origin
from jwt.algorithms import OKPAlgorithm

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "scripts" / "bench"
PATH = "/api/v1/exams/5f0c6f1e-8d1a-4c4e-9a7e-2f3b4c5d6e7f"
ISSUER = "exam-results-auth"
AUDIENCE = "exam-results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def ensure_tools(install: bool) -> tuple[str | None, str | None]:
    """wrk and nginx, installed with apt-get when missing (root only)."""
    found = ensure_packages({"wrk": "wrk", "nginx": "nginx-light"}, install)
    if not found["wrk"]:
        print("wrk is missing: using the Python load generator (figures understated)")
    if not found["nginx"]:
        print("nginx is missing: the nginx comparison is skipped (apt-get install nginx-light)")
    return found["wrk"], found["nginx"]


# ----------------------------------------------------------------------- processes


class Processes:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)


def nginx_config(workdir: Path, port: int, upstream_port: int) -> Path:
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/nginx-body;
    proxy_temp_path {workdir}/nginx-proxy;
    fastcgi_temp_path {workdir}/nginx-fastcgi;
    uwsgi_temp_path {workdir}/nginx-uwsgi;
    scgi_temp_path {workdir}/nginx-scgi;
    upstream app {{
        server 127.0.0.1:{upstream_port};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $remote_addr;
        }}
    }}
}}
"""
    )
    return conf


# ------------------------------------------------------------------------- loading


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    requests: int = 0
    cpu_us_per_request: float | None = None
    """CPU (user + system) the proxy itself spent per request: robust to other load."""


def _process_tree(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def cpu_seconds(root: int) -> float:
    """User + system CPU of a process and its children (workers), in seconds."""
    ticks = 0
    for pid in _process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def run_wrk(wrk: str, url: str, token: str, connections: int, seconds: float) -> Result:
    out = wrk_run(
        wrk,
        url,
        connections=connections,
        seconds=seconds,
        headers={"Authorization": f"Bearer {token}"},
    )
    return Result(out.rps, out.p50_ms, out.p99_ms, out.non_2xx, out.requests)


def run_loadgen(url: str, token: str, connections: int, seconds: float) -> Result:
    argv = [
        sys.executable,
        str(BENCH_DIR / "loadgen.py"),
        url,
        str(connections),
        str(seconds),
        token,
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return Result(data["rps"], data["p50_ms"], data["p99_ms"], data["non_2xx"], data["requests"])


# ---------------------------------------------------------------- client libraries


async def _client_leg(
    name: str, url: str, token: str, concurrency: int, seconds: float
) -> tuple[float, float, float]:
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.perf_counter() + seconds

    async def loop(get: Callable[[], Any]) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await get()
            latencies.append(time.perf_counter() - started)

    began, cpu_began = time.perf_counter(), time.process_time()
    if name == "gateway":
        client = UpstreamClient(
            pool_size=concurrency * 2,
            pool_per_host=concurrency * 2,
            connect_timeout=2.0,
            keepalive_seconds=30.0,
        )
        pool = client.pool(Origin.parse(url.split("/api/", 1)[0]))
        target = b"/api/" + url.split("/api/", 1)[1].encode()
        raw_headers = [(b"authorization", headers["Authorization"].encode())]
        timeouts = ExchangeTimeouts(30.0)

        async def get_gateway() -> bytes:
            response = await client.request(pool, "GET", target, raw_headers, timeouts=timeouts)
            try:
                return await response.read()
            finally:
                response.release()

        await asyncio.gather(*(loop(get_gateway) for _ in range(concurrency)))
        client.close()
    elif name == "aiohttp":
        connector = aiohttp.TCPConnector(limit=concurrency * 2, keepalive_timeout=30)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def get_aiohttp() -> bytes:
                async with session.get(url, headers=headers) as response:
                    return await response.read()

            await asyncio.gather(*(loop(get_aiohttp) for _ in range(concurrency)))
    else:
        limits = httpx.Limits(
            max_connections=concurrency * 2, max_keepalive_connections=concurrency
        )
        async with httpx.AsyncClient(limits=limits) as client:

            async def get_httpx() -> bytes:
                response = await client.get(url, headers=headers)
                return response.content

            await asyncio.gather(*(loop(get_httpx) for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    latencies.sort()
    count = len(latencies)
    return count / elapsed, latencies[int(count * 0.99)] * 1000, cpu / count * 1e6


def compare_clients(url: str, token: str, concurrency: int, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("gateway", "aiohttp", "httpx"):
        # On uvloop, as the gateway runs; the CPU per request is the steadier figure.
        uvloop.run(_client_leg(name, url, token, concurrency, 1.0))  # warm-up
        rps, p99, cpu_us = uvloop.run(_client_leg(name, url, token, concurrency, seconds))
        out[name] = {"rps": rps, "p99_ms": p99, "cpu_us": cpu_us}
    return out


# ---------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up load")
    parser.add_argument(
        "--rounds", type=int, default=4, help="interleaved rounds, every other one reversed"
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--no-install", action="store_true", help="never call apt-get")
    parser.add_argument("--skip-clients", action="store_true", help="skip the client comparison")
    parser.add_argument("--skip-workers", action="store_true", help="skip the 2-worker gateway")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    wrk, nginx = ensure_tools(install=not args.no_install)
    load1 = os.getloadavg()[0]
    if load1 > 0.5:
        print(
            f"note: load average {load1:.2f} before start: other work on this machine "
            "competes for the CPUs and lowers every figure"
        )
    key = Ed25519PrivateKey.generate()
    jwk = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update({"kid": "bench", "use": "sig", "alg": "EdDSA"})
    now = int(time.time())
    token = jwt.encode(
        {
            "sub": str(uuid.uuid4()),
            "role": "admin",
            "email": "bench@example.edu",
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 3600,
            "jti": uuid.uuid4().hex,
        },
        key,
        algorithm="EdDSA",
        headers={"kid": "bench"},
    )

    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    procs = Processes(workdir)
    base_env = {**os.environ, "BENCH_JWKS": json.dumps({"keys": [jwk]})}
    try:
        up_port = free_port()
        up_proc = procs.start(
            "upstream", [sys.executable, str(BENCH_DIR / "upstream.py"), str(up_port)], base_env
        )
        upstream = f"http://127.0.0.1:{up_port}"
        wait_http(upstream + "/.well-known/jwks.json")

        # variant -> (URL, the process whose CPU per request is reported)
        targets: dict[str, tuple[str, int]] = {"direct": (upstream + PATH, up_proc.pid)}
        if nginx:
            ng_port = free_port()
            conf = nginx_config(workdir, ng_port, up_port)
            ng_proc = procs.start("nginx", [nginx, "-c", str(conf), "-p", str(workdir)], base_env)
            wait_http(f"http://127.0.0.1:{ng_port}/")
            targets["nginx"] = (f"http://127.0.0.1:{ng_port}{PATH}", ng_proc.pid)

        def start_gateway(name: str, **extra: str) -> tuple[str, int]:
            port = free_port()
            env = {
                **base_env,
                "ENVIRONMENT": "development",
                "LOG_LEVEL": "WARNING",
                "GATEWAY_PORT": str(port),
                "GATEWAY_METRICS_PORT": str(free_port()),
                "AUTH_URL": upstream,
                "RESULTS_URL": upstream,
                "BULK_URL": upstream,
                "NOTIFIER_URL": upstream,
                "JWKS_URL": upstream + "/.well-known/jwks.json",
                "JWT_ISSUER": ISSUER,
                "JWT_AUDIENCE": AUDIENCE,
                "REDIS_KEY_PREFIX": f"bench:{uuid.uuid4().hex}:",
                # One user sends everything: a limit it never reaches keeps the
                # limiter's work in the figures without refusing the load.
                "RATE_LIMIT_PER_MINUTE": "1000000000",
                **extra,
            }
            proc = procs.start(name, [sys.executable, "-m", "gateway_service"], env)
            wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
            return f"http://127.0.0.1:{port}{PATH}", proc.pid

        targets["gateway"] = start_gateway("gateway")
        targets["gateway_jwt_off"] = start_gateway("gateway_jwt_off", GATEWAY_JWT_REQUIRED="false")
        targets["gateway_exact_limit"] = start_gateway(
            "gateway_exact_limit", RATE_LIMIT_SYNC_MS="0"
        )
        if not args.skip_workers:
            targets["gateway_2_workers"] = start_gateway("gateway_2_workers", GATEWAY_WORKERS="2")
        check = httpx.get(targets["gateway"][0], headers={"Authorization": f"Bearer {token}"})
        if check.status_code != 200:
            raise RuntimeError(f"gateway answered {check.status_code}: {check.text}")

        def measure(url: str, seconds: float) -> Result:
            if wrk:
                return run_wrk(wrk, url, token, args.connections, seconds)
            return run_loadgen(url, token, args.connections, seconds)

        runs: dict[str, list[Result]] = {name: [] for name in targets}
        for round_no in range(args.rounds):
            # Every other round runs the variants in reverse order, so a drift of the
            # host's speed during the run does not favour whichever comes first.
            order = list(targets.items())
            for name, (url, pid) in order if round_no % 2 == 0 else reversed(order):
                measure(url, args.warmup)
                cpu_before = cpu_seconds(pid)
                result = measure(url, args.duration)
                if result.requests:
                    spent = cpu_seconds(pid) - cpu_before
                    result.cpu_us_per_request = spent / result.requests * 1e6
                runs[name].append(result)
                print(
                    f"round {round_no + 1} {name:<20} {result.rps:9.0f} req/s  "
                    f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
                    f"cpu {result.cpu_us_per_request or 0:5.0f} us/req  non-2xx {result.non_2xx}",
                    flush=True,
                )

        medians = {
            name: Result(
                statistics.median(r.rps for r in results),
                statistics.median(r.p50_ms for r in results),
                statistics.median(r.p99_ms for r in results),
                sum(r.non_2xx for r in results),
                sum(r.requests for r in results),
                statistics.median(r.cpu_us_per_request or 0.0 for r in results),
            )
            for name, results in runs.items()
        }
        clients = None if args.skip_clients else compare_clients(upstream + PATH, token, 32, 5.0)
    finally:
        procs.stop_all()

    print()
    print(
        f"load generator: {'wrk -t1 --latency' if wrk else 'python aiohttp loadgen'}, "
        f"{args.connections} connections, {args.duration:g} s x {args.rounds} rounds (median); "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"{'variant':<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'cpu us/req':>12}{'non-2xx':>10}"
    )
    for name, r in medians.items():
        print(
            f"{name:<22}{r.rps:>10.0f}{r.p50_ms:>10.2f}{r.p99_ms:>10.2f}"
            f"{r.cpu_us_per_request or 0:>12.0f}{r.non_2xx:>10}"
        )
    gw, off = medians["gateway"], medians["gateway_jwt_off"]
    figures: dict[str, Any] = {name: vars(r) for name, r in medians.items()}

    def paired(a: str, b: str) -> tuple[float, list[float]]:
        """Median of the per-round ratios a/b (each round measures both minutes apart)."""
        ratios = [x.rps / y.rps for x, y in zip(runs[a], runs[b], strict=True) if y.rps]
        return statistics.median(ratios), ratios

    jwt_ratio, jwt_rounds = paired("gateway", "gateway_jwt_off")
    figures["jwt_on_off_ratio"] = jwt_ratio
    ok = jwt_ratio >= 0.90
    print(
        f"gateway JWT on/off: {jwt_ratio:.2f} (median of rounds "
        f"{' '.join(f'{r:.2f}' for r in jwt_rounds)}; target >= 0.90)"
    )
    if gw.cpu_us_per_request and off.cpu_us_per_request:
        cpu_ratio = off.cpu_us_per_request / gw.cpu_us_per_request
        figures["jwt_on_off_cpu_ratio"] = cpu_ratio
        print(f"gateway JWT on/off by CPU per request (steadier): {cpu_ratio:.2f}")
    if "nginx" in medians:
        ng_ratio, ng_rounds = paired("gateway", "nginx")
        figures["gateway_nginx_ratio"] = ng_ratio
        ok = ok and ng_ratio >= 0.30 and gw.p99_ms <= 30
        print(
            f"gateway/nginx: {ng_ratio:.2f} (median of rounds "
            f"{' '.join(f'{r:.2f}' for r in ng_rounds)}; target >= 0.30), "
            f"gateway p99 {gw.p99_ms:.2f} ms (target <= 30)"
        )
    print(
        f"exact per-request Redis limit / batched: "
        f"{medians['gateway_exact_limit'].rps / gw.rps:.2f}"
    )
    if "gateway_2_workers" in medians and "nginx" in medians:
        two = medians["gateway_2_workers"]
        print(
            f"gateway with 2 workers/nginx: {two.rps / medians['nginx'].rps:.2f}, "
            f"p99 {two.p99_ms:.2f} ms"
        )
    if clients:
        figures["clients"] = clients
        g, a, h = clients["gateway"], clients["aiohttp"], clients["httpx"]
        print(
            f"client leg, 32 concurrent: the gateway's client {g['rps']:.0f} req/s "
            f"(p99 {g['p99_ms']:.1f} ms, {g['cpu_us']:.0f} us CPU/req), "
            f"aiohttp {a['rps']:.0f} req/s (p99 {a['p99_ms']:.1f} ms, {a['cpu_us']:.0f} us), "
            f"httpx {h['rps']:.0f} req/s (p99 {h['p99_ms']:.1f} ms, {h['cpu_us']:.0f} us)"
        )
    print("targets met" if ok else "targets NOT met")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
