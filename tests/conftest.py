"""End-to-end fixtures: the whole suite as real processes, like `make run`.

Each session gets its own database, ports, Redis key prefix, queue prefix and
events exchange, so it never collides with `make run` or another test run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from service_kit.testing import create_database, delete_queues_with_prefix, drop_database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from localsuite import SERVICES, Suite, free_port, start_suite  # noqa: E402

sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from inboxes import MailSink, WebhookReceiver, start_webhook_receiver  # noqa: E402

ADMIN_EMAIL = "e2e-admin@example.edu"
ADMIN_PASSWORD = "e2e-admin-password"
ALLOWED_ORIGIN = "https://app.example.edu"
WEBHOOK_SECRET = "e2e-webhook-secret"


class BulkWorkers:
    """bulk's worker processes (`python -m bulk_service worker`), apart from its API as in
    Kubernetes, so a test can SIGKILL one mid-job and start others."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []
        self.ports: dict[int, int] = {}
        """Process id -> its WORKER_PORT (health and metrics)."""

    def start(self, **overrides: str) -> subprocess.Popen[bytes]:
        env = {**self.env, "WORKER_PORT": str(free_port()), **overrides}
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"bulk-worker-{len(self.processes)}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "bulk_service", "worker"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        port = env["WORKER_PORT"]
        self.ports[process.pid] = int(port)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"bulk worker exited with {process.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    return process
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("bulk worker did not become ready")

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.processes if p.poll() is None]

    def ensure(self, count: int = 1) -> None:
        """At least ``count`` workers running (a test may have killed some)."""
        while len(self.alive()) < count:
            self.start()

    def stop_all(self) -> None:
        for process in self.alive():
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@dataclass
class E2E:
    suite: Suite
    gateway: str
    env: dict[str, str]
    page_origins: dict[str, int]
    bulk_workers: BulkWorkers
    mail: MailSink
    """The SMTP server the notifier sends to (SMTP_URL)."""
    webhooks: WebhookReceiver
    """The receiver of the notifier's signed webhooks (WEBHOOK_URL)."""

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.gateway, timeout=30, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    with running_suite(tmp_path_factory.mktemp("e2e")) as suite:
        yield suite


@contextmanager
def running_suite(tmp: Path, extra_env: Mapping[str, str] | None = None) -> Iterator[E2E]:
    """A whole suite of its own (database, ports, prefixes), stopped and dropped after;
    ``extra_env`` adds to every process's environment (the traces test's OTEL_*)."""
    run_id = uuid.uuid4().hex[:10]
    database = f"e2e_{run_id}"
    database_url = asyncio.run(create_database(database))
    ports = {s.name: free_port() for s in SERVICES}
    # Origins of the browser test's pages: one allowed, one refused.
    page_ports = {"allowed": free_port(), "refused": free_port()}
    origins = [ALLOWED_ORIGIN, f"http://127.0.0.1:{page_ports['allowed']}"]
    overrides = {
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "REDIS_KEY_PREFIX": f"e2e:{run_id}:",
        "QUEUE_PREFIX": f"e2e-{run_id}.",
        "EVENTS_EXCHANGE": f"e2e-{run_id}.events",
        "JWT_SIGNING_KEY_FILE": str(tmp / "keys" / "jwt.pem"),
        "ADMIN_EMAIL": ADMIN_EMAIL,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "CORS_ALLOW_ORIGINS": ",".join(origins),
        # Free, not 9100: another suite (or `make run`) may be up beside this one.
        "GATEWAY_METRICS_PORT": str(free_port()),
        "LOGIN_MAX_FAILURES_PER_EMAIL": "5",
        "LOGIN_MAX_ATTEMPTS_PER_IP": "1000",
        "LOG_JSON": "true",
        # Queues of a killed run expire instead of piling up in the shared broker.
        "QUEUE_EXPIRES_SECONDS": "600",
        # bulk's workers run as processes of their own (BulkWorkers), with
        # short leases so a killed worker's job is taken over in seconds.
        "BULK_RUN_WORKERS": "false",
        "JOB_LEASE_SECONDS": "3",
        "JOB_SWEEP_SECONDS": "0.5",
    }
    # Where the notifier delivers: a real SMTP server and a webhook receiver that
    # checks signatures; short retry tiers, so an SMTP outage test takes seconds.
    mail = MailSink()
    mail.start()
    webhooks, stop_webhooks = start_webhook_receiver(WEBHOOK_SECRET.encode())
    overrides |= {
        "SMTP_URL": mail.url,
        "MAIL_FROM": "Exam results <results@example.edu>",
        "FRONTEND_URL": ALLOWED_ORIGIN,
        "WEBHOOK_URL": webhooks.url,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "DELIVERY_RETRY_DELAYS_SECONDS": "[1, 2, 4, 8, 16]",
    }
    overrides |= dict(extra_env or {})
    suite = None
    workers = None
    try:
        suite = start_suite(overrides, ports=ports, log_dir=tmp / "logs")
        workers = BulkWorkers(suite.env, tmp / "logs")
        workers.start()
        yield E2E(suite, suite.url("gateway"), suite.env, page_ports, workers, mail, webhooks)
    finally:
        mail.stop()
        stop_webhooks()
        if workers is not None:
            workers.stop_all()
        if suite is not None:
            suite.stop()
            if os.environ.get("E2E_SHOW_LOGS"):
                for log in sorted((tmp / "logs").glob("*.log")):
                    print(f"--- {log.name}\n{log.read_text()[-4000:]}")
        asyncio.run(drop_database(database))
        rabbitmq_url = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
        asyncio.run(delete_queues_with_prefix(rabbitmq_url, overrides["QUEUE_PREFIX"]))


@pytest.fixture(scope="session")
def admin_tokens(e2e: E2E) -> dict[str, str]:
    with e2e.client() as client:
        response = client.post(
            "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert response.status_code == 200, response.text
        data: dict[str, str] = response.json()
        return data


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
