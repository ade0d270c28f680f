"""Helpers of the auth tests (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
import orjson
from aio_pika.abc import AbstractConnection, AbstractQueue
from auth_service.settings import AuthSettings
from fastapi import FastAPI
from service_kit.messaging.topology import declare_events_exchange
from service_kit.settings import DEV_SERVICE_CLIENT_SECRET

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
REDIS_URL = "redis://127.0.0.1:6379/0"
ADMIN_EMAIL = "root@example.edu"
ADMIN_PASSWORD = "root-test-password"
PASSWORD = "correct horse battery"


async def sql(settings: AuthSettings, statement: str, *args: object) -> list[asyncpg.Record]:
    """Runs SQL on the test's database directly (to inspect or age rows)."""
    conn = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
    try:
        return list(await conn.fetch(statement, *args))
    finally:
        await conn.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Keys:
    current: Path
    previous: Path


@dataclass
class Service:
    """One running auth app and an HTTP client for it."""

    app: FastAPI
    client: httpx.AsyncClient
    settings: AuthSettings

    async def login(self, email: str, password: str, **headers: str) -> httpx.Response:
        return await self.client.post(
            "/api/v1/auth/login", json={"email": email, "password": password}, headers=headers
        )

    async def tokens(self, email: str, password: str) -> dict[str, Any]:
        response = await self.login(email, password)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    async def access_token(self, email: str, password: str) -> str:
        return str((await self.tokens(email, password))["access_token"])

    async def refresh(self, refresh_token: str) -> httpx.Response:
        return await self.client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})

    async def create_user(self, admin_token: str, **fields: Any) -> dict[str, Any]:
        response = await self.client.post("/api/v1/users", json=fields, headers=bearer(admin_token))
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()
        return data

    async def new_user(
        self, admin_token: str, email: str, role: str = "examiner", **fields: Any
    ) -> dict[str, Any]:
        """An active user with :data:`PASSWORD`."""
        fields.setdefault("full_name", email.split("@")[0].title())
        fields.setdefault("password", PASSWORD)
        if role == "student":
            fields.setdefault("student_number", f"S-{email.split('@')[0]}")
        return await self.create_user(admin_token, email=email, role=role, **fields)

    async def service_token(
        self,
        client_id: str = "results",
        audience: str = "internal:auth",
        secret: str = DEV_SERVICE_CLIENT_SECRET,
    ) -> httpx.Response:
        """Asks for a service token as ``client_id`` (the development secret by default)."""
        return await self.client.post(
            "/internal/oauth/token",
            data={"grant_type": "client_credentials", "audience": audience},
            auth=(client_id, secret),
        )

    async def service_headers(self, client_id: str = "results") -> dict[str, str]:
        """Headers with a service token that opens auth's internal endpoints."""
        response = await self.service_token(client_id)
        assert response.status_code == 200, response.text
        return bearer(response.json()["access_token"])

    async def metric(self, name: str, **labels: str) -> float:
        """The value of one sample on /metrics (0 when absent)."""
        text = (await self.client.get("/metrics")).text
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            sample, _, value = line.rpartition(" ")
            metric_name, _, label_text = sample.partition("{")
            if metric_name != name:
                continue
            found = ",".join(sorted(p for p in label_text.rstrip("}").split(",") if p))
            if found == wanted:
                return float(value)
        return 0.0


StartService = Callable[..., Awaitable[Service]]


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


class EventTap:
    """A private, auto-deleted queue on the test's events exchange."""

    def __init__(self, connection: AbstractConnection, queue: AbstractQueue) -> None:
        self._connection = connection
        self._queue = queue
        self.seen: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, settings: AuthSettings, routing_keys: Sequence[str]) -> EventTap:
        connection = await aio_pika.connect(RABBITMQ_URL)
        channel = await connection.channel()
        exchange = await declare_events_exchange(channel, settings)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for key in routing_keys:
            await queue.bind(exchange, routing_key=key)
        return cls(connection, queue)

    async def next(self, event_type: str, timeout: float = 10.0, **data: Any) -> dict[str, Any]:
        """The first event of ``event_type`` (whose data has ``data``) seen so far or arriving."""

        def matches(envelope: dict[str, Any]) -> bool:
            return envelope["type"] == event_type and all(
                envelope["data"].get(k) == v for k, v in data.items()
            )

        deadline = time.monotonic() + timeout
        while True:
            for envelope in self.seen:
                if matches(envelope):
                    self.seen.remove(envelope)
                    return envelope
            message = await self._queue.get(no_ack=True, fail=False)
            if message is not None:
                envelope = orjson.loads(message.body)
                envelope["_amqp"] = {
                    "message_id": message.message_id,
                    "type": message.type,
                    "delivery_mode": int(message.delivery_mode or 0),
                    "routing_key": message.routing_key,
                }
                self.seen.append(envelope)
                continue
            if time.monotonic() > deadline:
                raise AssertionError(f"no {event_type} event {data} within {timeout}s")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        await self._connection.close()
