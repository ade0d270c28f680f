"""Benchmark of the notifier (issue 10 item 8): a publication to 10,000 students.

In ONE run, against the local Postgres and RabbitMQ:

1. a notifier worker (``python -m notifier_service worker``, a process of its
   own as in Kubernetes) with email on, pointed at a local SMTP sink (aiosmtpd
   in a process of its own, counting what it receives);
2. ``results.published`` for ``--students`` students, in chunks of 500 as
   results writes them, published at once: seconds from the first publish to
   every in-app notification stored (target: 10,000 within 10 s), and the
   fan-out's notifications per second;
3. the emails the worker delivers to the sink: emails per second from the
   first to the last received (steady state), and from the first publish to
   the last email (end to end);
4. the baseline, in the same run, to the same sink: a bare loop of the same
   SMTP client (aiosmtplib, one connection) sending the very same messages,
   rendered beforehand (so the bare loop does less work than the worker, which
   renders each email as it goes); the ratio worker / bare (target >= 0.5).

The students are written straight into the notifier's users read model (as
after auth's ``user.created`` events): creating 10,000 users through auth would
measure auth's password hashing, not the notifier.

Usage: ``uv run --frozen python scripts/bench_notifier.py [--students 10000]
[--smtp-connections 4]``. The targets are reported, not enforced.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import aio_pika
import aiosmtplib
import asyncpg
import httpx
import psutil
from service_kit.testing import free_port

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 500
NOTIFIER_ALEMBIC_INI = ROOT / "services" / "notifier" / "alembic.ini"


# -- the SMTP sink, a process of its own ---------------------------------------------------


def run_sink(smtp_port: int, stats_port: int) -> None:
    """An aiosmtpd server that counts messages; its counts at GET /stats, reset by /reset."""
    from aiosmtpd.controller import Controller

    stats: dict[str, Any] = {"count": 0, "first": None, "last": None}
    lock = threading.Lock()

    class Counter:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            now = time.time()
            with lock:
                stats["count"] += 1
                stats["first"] = stats["first"] or now
                stats["last"] = now
            return "250 OK"

    class Stats(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                if self.path == "/reset":
                    stats.update(count=0, first=None, last=None)
                body = json.dumps(stats).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    controller = Controller(Counter(), hostname="127.0.0.1", port=smtp_port)
    controller.start()
    server = HTTPServer(("127.0.0.1", stats_port), Stats)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    finally:
        controller.stop()


class Sink:
    def __init__(self) -> None:
        self.smtp_port, self.stats_port = free_port(), free_port()
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--sink", str(self.smtp_port), str(self.stats_port)]
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                self.stats()
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stats(self, path: str = "/stats") -> dict[str, Any]:
        response = httpx.get(f"http://127.0.0.1:{self.stats_port}{path}", timeout=5)
        return dict(response.json())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def start_worker(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    worker = subprocess.Popen(
        [sys.executable, "-m", "notifier_service", "worker"], env=env, cwd=ROOT
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return worker
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or worker.poll() is not None:
            worker.kill()
            raise RuntimeError("the notifier worker did not become ready")
        time.sleep(0.2)


# -- the run -------------------------------------------------------------------------------


async def wait_until(check: Any, *, within: float, every: float = 0.02) -> float:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark did not finish in time")
        await asyncio.sleep(every)
    return time.time()


async def rendered_messages(db_url: str, smtp_url: str) -> list[tuple[bytes, str]]:
    """The emails of the stored notifications, rendered as the worker renders them."""
    from notifier_service.delivery.email import OutgoingEmail, SmtpMailer
    from notifier_service.domain import texts
    from notifier_service.domain.facts import facts_from_stored
    from notifier_service.domain.kinds import NotificationKind
    from notifier_service.domain.smtp_url import parse_smtp_url

    mailer = SmtpMailer(parse_smtp_url(smtp_url), mail_from="Exam results <results@example.edu>")
    connection = await asyncpg.connect(db_url)
    try:
        rows = await connection.fetch(
            "SELECT n.id, n.kind, n.facts, u.email, u.full_name FROM notifier.notifications n "
            "JOIN notifier.users u ON u.id = n.user_id ORDER BY n.seq"
        )
    finally:
        await connection.close()
    messages = []
    for row in rows:
        kind = NotificationKind(row["kind"])
        facts = facts_from_stored(
            kind, json.loads(row["facts"]), recipient_name=row["full_name"], token=None
        )
        content = texts.email(kind, facts, "https://app.example.edu")
        mail = OutgoingEmail(row["id"], row["email"], row["full_name"], content)
        messages.append((mailer.message(mail), row["email"]))
    return messages


async def bare_loop(port: int, messages: list[tuple[bytes, str]]) -> float:
    """Seconds for one aiosmtplib connection to send every message, one after another."""
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
    await client.connect()
    started, cpu = time.perf_counter(), time.process_time()
    for message, to in messages:
        await client.sendmail("results@example.edu", [to], message)
    elapsed = time.perf_counter() - started
    print(f"bare loop CPU: {(time.process_time() - cpu) / len(messages) * 1000:.2f} ms an email")
    await client.quit()
    return elapsed


async def bench(students: int, smtp_connections: int, batch_size: int | None) -> None:
    from service_kit.migrations import upgrade_to_head
    from service_kit.testing import (
        create_database,
        delete_queues_with_prefix,
        drop_database,
        unique_database_name,
    )

    run = uuid.uuid4().hex[:10]
    database = unique_database_name("bench_notifier")
    db_url = await create_database(database)
    plain_url = db_url.replace("postgresql+asyncpg://", "postgresql://")
    rabbitmq_url = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    prefix = f"bench-{run}."
    sink = Sink()
    worker = None
    try:
        await upgrade_to_head(NOTIFIER_ALEMBIC_INI, db_url)
        ids = [uuid.uuid4() for _ in range(students)]
        connection = await asyncpg.connect(plain_url)
        await connection.copy_records_to_table(
            "users",
            schema_name="notifier",
            columns=["id", "email", "full_name", "role", "active", "version"],
            records=[
                (i, f"s-{i.hex[:12]}@example.edu", f"Student {n}", "student", True, 1)
                for n, i in enumerate(ids)
            ],
        )

        async def stored() -> int:
            return int(await connection.fetchval("SELECT count(*) FROM notifier.notifications"))

        smtp_url = f"smtp://127.0.0.1:{sink.smtp_port}"
        worker_port = free_port()
        env = {
            **os.environ,
            "ENVIRONMENT": "test",
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": db_url,
            "QUEUE_PREFIX": prefix,
            "EVENTS_EXCHANGE": f"bench-{run}.events",
            "REDIS_KEY_PREFIX": f"bench-{run}:",
            "QUEUE_EXPIRES_SECONDS": "600",
            "SMTP_URL": smtp_url,
            "SMTP_CONNECTIONS": str(smtp_connections),
            "MAIL_FROM": "Exam results <results@example.edu>",
            "FRONTEND_URL": "https://app.example.edu",
            "WORKER_PORT": str(worker_port),
            **({"DELIVERY_BATCH_SIZE": str(batch_size)} if batch_size else {}),
        }
        worker = await asyncio.to_thread(start_worker, env, worker_port)

        exam = uuid.uuid4()
        chunks = [ids[i : i + CHUNK] for i in range(0, students, CHUNK)]
        bodies = [
            json.dumps(
                {
                    "id": str(uuid.uuid4()),
                    "type": "results.published",
                    "version": 1,
                    "occurred_at": datetime.now(UTC).isoformat(),
                    "producer": "results",
                    "data": {
                        "exam_id": str(exam),
                        "exam_code": "PHYS-2026",
                        "exam_name": "Physics, spring 2026",
                        "published_at": datetime.now(UTC).isoformat(),
                        "generation": 1,
                        "chunk_no": n,
                        "chunk_count": len(chunks),
                        "recipients": [
                            {"student_id": str(s), "student_number": f"S-{s.hex[:8]}"}
                            for s in chunk
                        ],
                    },
                }
            ).encode()
            for n, chunk in enumerate(chunks)
        ]
        amqp = await aio_pika.connect(rabbitmq_url)
        channel = await amqp.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(f"bench-{run}.events")
        started = time.time()
        await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(
                        body,
                        message_id=json.loads(body)["id"],
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key="results.published",
                )
                for body in bodies
            )
        )
        await amqp.close()

        async def all_stored() -> bool:
            return await stored() >= students

        stored_at = await wait_until(all_stored, within=300)

        worker_process = psutil.Process(worker.pid)
        cpu_at_stored = sum(worker_process.cpu_times()[:2])

        async def all_mailed() -> bool:
            return int((await asyncio.to_thread(sink.stats))["count"]) >= students

        await wait_until(all_mailed, within=600, every=0.1)
        mailed = await asyncio.to_thread(sink.stats)
        worker_cpu = sum(worker_process.cpu_times()[:2]) - cpu_at_stored
        metrics = await asyncio.to_thread(httpx.get, f"http://127.0.0.1:{worker_port}/metrics")
        for line in metrics.text.splitlines():
            if line.startswith(
                (
                    "notifier_delivery_send_duration_seconds_sum",
                    "notifier_delivery_send_duration_seconds_count",
                    "message_handle_duration_seconds_sum",
                    "message_handle_duration_seconds_count",
                )
            ):
                print("  worker metric:", line)
        worker.send_signal(signal.SIGTERM)
        await asyncio.to_thread(worker.wait, 30)
        worker = None

        attempts = await connection.fetch(
            "SELECT channel, outcome, count(*) AS n FROM notifier.delivery_attempts "
            "GROUP BY channel, outcome ORDER BY channel, outcome"
        )
        messages = await rendered_messages(plain_url, smtp_url)
        await asyncio.to_thread(sink.stats, "/reset")
        bare_seconds = await bare_loop(sink.smtp_port, messages)
        await connection.close()

        fan_out = stored_at - started
        steady = students / max(mailed["last"] - mailed["first"], 1e-9)
        end_to_end = students / (mailed["last"] - started)
        bare = len(messages) / bare_seconds
        print(f"students: {students} in {len(chunks)} chunks of {CHUNK}")
        print(
            f"in-app: all stored {fan_out:.2f} s after the first publish "
            f"({students / fan_out:,.0f} notifications/s; target 10,000 within 10 s)"
        )
        print(
            f"email through the notifier ({smtp_connections} SMTP connections): "
            f"{steady:,.0f}/s steady (first to last mail), {end_to_end:,.0f}/s from the "
            f"first publish"
        )
        print(f"notifier worker CPU while emailing: {worker_cpu / students * 1000:.2f} ms an email")
        print(
            "delivery attempts: "
            + ", ".join(f"{a['channel']} {a['outcome']} {a['n']}" for a in attempts)
        )
        print(f"email, bare aiosmtplib loop (one connection, pre-rendered): {bare:,.0f}/s")
        print(
            f"ratio notifier / bare: {steady / bare:.2f} steady, {end_to_end / bare:.2f} "
            "end to end (target >= 0.5)"
        )
    finally:
        if worker is not None:
            worker.kill()
        sink.stop()
        await drop_database(database)
        await delete_queues_with_prefix(rabbitmq_url, prefix)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--sink":
        run_sink(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=10_000)
    parser.add_argument("--smtp-connections", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=None, help="DELIVERY_BATCH_SIZE")
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(bench(args.students, args.smtp_connections, args.batch_size))


if __name__ == "__main__":
    main()
