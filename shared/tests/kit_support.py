"""Helpers of the kit's tests (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from service_kit.db import Database
from service_kit.messaging.relay import OutboxRelay
from service_kit.messaging.topology import QueueSpec
from service_kit.settings import KitSettings

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
REDIS_URL = "redis://127.0.0.1:6379/0"
SCHEMA = "kit"


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0, interval: float = 0.05
) -> None:
    """Polls ``predicate`` (sync or async) until it is true."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def equals(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


def death_reason(message: AbstractIncomingMessage) -> str:
    """Why the broker dead-lettered ``message`` last (its newest x-death entry)."""
    deaths: Any = (message.headers or {})["x-death"]
    return str(deaths[0]["reason"])


@dataclass
class Rabbit:
    """A channel for the test, and the topology it must delete afterwards."""

    settings: KitSettings
    channel: AbstractChannel
    specs: list[QueueSpec] = field(default_factory=list)

    def track(self, spec: QueueSpec) -> QueueSpec:
        self.specs.append(spec)
        return spec

    async def queue(self, name: str) -> AbstractQueue:
        return await self.channel.get_queue(name, ensure=True)

    async def get(self, queue_name: str, timeout: float = 10.0) -> AbstractIncomingMessage:
        """The next message of a queue (acknowledged), waiting up to ``timeout``."""
        queue = await self.queue(queue_name)
        deadline = time.monotonic() + timeout
        while True:
            message = await queue.get(fail=False, no_ack=True)
            if message is not None:
                return message
            if time.monotonic() > deadline:
                raise AssertionError(f"no message on {queue_name} within {timeout}s")
            await asyncio.sleep(0.05)

    async def drain(
        self, queue_name: str, settle_seconds: float = 0.5
    ) -> list[AbstractIncomingMessage]:
        """Every message that arrives until none came for ``settle_seconds``."""
        queue = await self.queue(queue_name)
        messages: list[AbstractIncomingMessage] = []
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < settle_seconds:
            message = await queue.get(fail=False, no_ack=True)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            messages.append(message)
            quiet_since = time.monotonic()
        return messages

    async def message_count(self, queue_name: str) -> int:
        declared = await self.channel.declare_queue(queue_name, passive=True)
        count = declared.declaration_result.message_count
        return int(count or 0)


def fast_relay(db: Database, settings: KitSettings, **overrides: object) -> OutboxRelay:
    """A relay with test-sized intervals (options in ``overrides`` win)."""
    options: dict[str, object] = {
        "poll_interval_seconds": 0.1,
        "min_backoff_seconds": 0.05,
        "max_backoff_seconds": 0.3,
        "publish_timeout_seconds": 3.0,
    }
    options.update(overrides)
    return OutboxRelay(db, settings, schema=SCHEMA, **options)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TcpProxy:
    """A TCP forwarder we can switch off and on: a broker that goes away and comes back."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.port = free_port()
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def stop(self) -> None:
        """Refuses new connections and cuts the open ones."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        for task in list(self._pipes):
            task.cancel()
        if self._pipes:
            await asyncio.wait(list(self._pipes))
        self._pipes.clear()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers.update({writer, up_writer})
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.close()
