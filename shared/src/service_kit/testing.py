"""Throwaway PostgreSQL databases and Redis key spaces for tests: the one way every suite
makes them.

Each test (or session) gets a database of its own, created on the local server
and dropped afterwards even on failure (``WITH (FORCE)`` ends connections a
failed test left open), so suites run in any order, in parallel, and next to
``make run``. A suite that migrates once can copy a template per test: copying
is much faster than migrating.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import asyncpg
import uvicorn
from redis.asyncio import Redis

#: The server tests create databases on (libpq URL, no database name).
POSTGRES_SERVER_URL = os.environ.get("TEST_POSTGRES_SERVER", "postgresql://postgres@127.0.0.1:5432")


def unique_database_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def async_database_url(name: str) -> str:
    """The SQLAlchemy (asyncpg) URL of database ``name`` on the test server."""
    return f"{POSTGRES_SERVER_URL.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"


async def admin_sql(statement: str) -> None:
    """Runs one statement on the server's maintenance database (outside a transaction)."""
    conn = await asyncpg.connect(f"{POSTGRES_SERVER_URL}/postgres")
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def create_database(name: str, *, template: str | None = None) -> str:
    """Creates ``name`` (a copy of ``template`` if given); returns its asyncpg URL."""
    clause = f' TEMPLATE "{template}"' if template else ""
    await admin_sql(f'CREATE DATABASE "{name}"{clause}')
    return async_database_url(name)


async def drop_database(name: str) -> None:
    await admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def temporary_database(prefix: str, *, template: str | None = None) -> AsyncIterator[str]:
    """A new database for the block; yields its asyncpg URL and drops it afterwards."""
    name = unique_database_name(prefix)
    url = await create_database(name, template=template)
    try:
        yield url
    finally:
        await drop_database(name)


@asynccontextmanager
async def scratch_redis(client: Redis, key_prefix: str) -> AsyncIterator[Redis]:
    """``client`` for a test whose keys all start with ``key_prefix``.

    Afterwards, even on failure, those keys are deleted and the client is
    closed, so runs sharing the local Redis never see each other's keys.
    """
    try:
        yield client
    finally:
        keys = [key async for key in client.scan_iter(match=f"{key_prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def delete_queues_with_prefix(rabbitmq_url: str, prefix: str) -> int:
    """Deletes every queue whose name starts with ``prefix``; returns how many.

    For suites of real processes (tests/e2e), whose queues the test cannot name
    one by one (retry tiers carry the configured delays): RabbitMQ holds files
    open for every quorum queue, so the queues of finished runs must not pile
    up until their ``x-expires``. The names come from ``rabbitmqctl`` (no
    management plugin is assumed); where it cannot run, nothing is deleted
    and the queues expire by themselves.
    """
    if not prefix or shutil.which("rabbitmqctl") is None:
        return 0
    listing = await asyncio.create_subprocess_exec(
        "rabbitmqctl",
        "list_queues",
        "name",
        "--quiet",
        "--no-table-headers",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(listing.communicate(), timeout=60)
    except TimeoutError:
        listing.kill()
        return 0
    names = [n for n in out.decode().split() if n.startswith(prefix)]
    if not names:
        return 0
    connection = await aio_pika.connect(rabbitmq_url)
    try:
        channel = await connection.channel()
        for name in names:
            await channel.queue_delete(name)
    finally:
        await connection.close()
    return len(names)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_in_thread(app: Any, name: str) -> tuple[str, Callable[[], None]]:
    """Serves an ASGI ``app`` (a test stub: an upstream, a receiver) on a free port from
    a thread of its own; returns its base URL and the function that stops it."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"{name} did not start")
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(5)

    return f"http://127.0.0.1:{port}", stop
