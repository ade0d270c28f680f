"""Starts the suite on this machine: every service that exists, as its own process.

Used by ``make run`` (scripts/run_local.py) and by the end-to-end tests, which
start the same processes on free ports against a database of their own, so the
tests exercise exactly what a developer runs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    port_env: str
    default_port: int
    migrates: bool

    @property
    def package(self) -> str:
        return f"{self.name}_service"

    def exists(self) -> bool:
        return (ROOT / "services" / self.name / "src" / self.package / "__main__.py").is_file()


# Start order: backends before the gateway, so its readiness sees them.
SERVICES = (
    ServiceSpec("auth", "AUTH_PORT", 8001, migrates=True),
    ServiceSpec("results", "RESULTS_PORT", 8002, migrates=True),
    ServiceSpec("bulk", "BULK_PORT", 8003, migrates=True),
    ServiceSpec("notifier", "NOTIFIER_PORT", 8004, migrates=True),
    ServiceSpec("gateway", "GATEWAY_PORT", 8000, migrates=False),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningService:
    spec: ServiceSpec
    port: int
    process: subprocess.Popen[bytes]


@dataclass
class Suite:
    env: dict[str, str]
    services: list[RunningService] = field(default_factory=list)
    log_dir: Path | None = None

    def url(self, name: str) -> str:
        for svc in self.services:
            if svc.spec.name == name:
                return f"http://127.0.0.1:{svc.port}"
        raise KeyError(name)

    def process(self, name: str) -> subprocess.Popen[bytes]:
        for svc in self.services:
            if svc.spec.name == name:
                return svc.process
        raise KeyError(name)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM everything (reverse order), then SIGKILL what has not exited."""
        for svc in reversed(self.services):
            if svc.process.poll() is None:
                svc.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for svc in reversed(self.services):
            remaining = max(0.1, deadline - time.monotonic())
            try:
                svc.process.wait(remaining)
            except subprocess.TimeoutExpired:
                svc.process.kill()
                svc.process.wait(5)


def service_env(base: Mapping[str, str], overrides: Mapping[str, str]) -> dict[str, str]:
    env = dict(base)
    env.update(overrides)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run_migrations(spec: ServiceSpec, env: Mapping[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", spec.package, "migrate"], env=dict(env), cwd=ROOT, check=True
    )


def ensure_dev_signing_key(path: Path, env: Mapping[str, str]) -> None:
    """Creates the development JWT key once; auth refuses to start without one."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "auth_service", "keygen", str(path)],
        env=dict(env),
        cwd=ROOT,
        check=True,
    )


def wait_healthy(svc: RunningService, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{svc.port}/healthz"
    while time.monotonic() < deadline:
        if svc.process.poll() is not None:
            raise RuntimeError(f"{svc.spec.name} exited with {svc.process.returncode} at start")
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{svc.spec.name} did not answer {url} within {timeout:.0f}s")


def start_suite(
    overrides: Mapping[str, str],
    *,
    ports: Mapping[str, int] | None = None,
    only: set[str] | None = None,
    log_dir: Path | None = None,
    startup_timeout: float = 60.0,
) -> Suite:
    """Migrates and starts every existing service; returns once all answer /healthz."""
    ports = dict(ports or {})
    chosen = [s for s in SERVICES if s.exists() and (only is None or s.name in only)]
    port_of = {s.name: ports.get(s.name, s.default_port) for s in SERVICES}
    wiring = {s.port_env: str(port_of[s.name]) for s in SERVICES}
    wiring.update(
        {f"{s.name.upper()}_URL": f"http://127.0.0.1:{port_of[s.name]}" for s in SERVICES}
    )
    wiring["JWKS_URL"] = f"http://127.0.0.1:{port_of['auth']}/.well-known/jwks.json"
    env = service_env(os.environ, {**wiring, **overrides})
    if "JWT_SIGNING_KEY_FILE" in env:
        ensure_dev_signing_key(Path(env["JWT_SIGNING_KEY_FILE"]), env)
    for spec in chosen:
        if spec.migrates:
            run_migrations(spec, env)
    suite = Suite(env=env, log_dir=log_dir)
    try:
        for spec in chosen:
            out: int | object = subprocess.DEVNULL
            if log_dir is not None:
                log_dir.mkdir(parents=True, exist_ok=True)
                out = (log_dir / f"{spec.name}.log").open("ab")
            elif overrides.get("SUITE_LOG_TO_TERMINAL") == "1":
                out = None  # type: ignore[assignment]
            proc = subprocess.Popen(
                [sys.executable, "-m", spec.package],
                env=env,
                cwd=ROOT,
                stdout=out,  # type: ignore[arg-type]
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
            )
            running = RunningService(spec, port_of[spec.name], proc)
            suite.services.append(running)
            wait_healthy(running, startup_timeout)
    except BaseException:
        suite.stop()
        raise
    return suite


async def _check_dependencies(env: Mapping[str, str]) -> dict[str, str]:
    import aio_pika
    import asyncpg
    from redis.asyncio import Redis

    problems: dict[str, str] = {}
    db_url = env.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        conn = await asyncio.wait_for(
            asyncpg.connect(db_url.replace("postgresql+asyncpg://", "postgresql://")), 5
        )
        await conn.close()
    except Exception as exc:
        problems["postgresql"] = (
            f"PostgreSQL at {db_url} does not answer ({type(exc).__name__}: {exc}).\n"
            "    start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        )
    redis_url = env.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        client = Redis.from_url(redis_url, socket_connect_timeout=3)
        await asyncio.wait_for(client.ping(), 5)
        await client.aclose()
    except Exception as exc:
        problems["redis"] = (
            f"Redis at {redis_url} does not answer ({type(exc).__name__}).\n"
            "    start it: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ''"
        )
    amqp_url = env.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    try:
        connection = await asyncio.wait_for(aio_pika.connect(amqp_url), 5)
        await connection.close()
    except Exception as exc:
        problems["rabbitmq"] = (
            f"RabbitMQ at {amqp_url} does not answer ({type(exc).__name__}).\n"
            "    start it: rabbitmq-server -detached"
        )
    return problems


def check_dependencies(env: Mapping[str, str]) -> dict[str, str]:
    """The backing servers that do not answer ("postgresql", "redis", "rabbitmq"), each
    with what is wrong and how to start it."""
    return asyncio.run(_check_dependencies(env))
