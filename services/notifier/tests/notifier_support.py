"""Helpers of the notifier tests: tokens, the auth stub, rows of the notifier's tables.

Copied in small from ``services/bulk/tests/bulk_support.py`` (a test package
never imports another service's): test Ed25519 keys with a static JWKS for the
token verifier, and a tiny real HTTP server standing in for auth's internal
user lookup and its service-token endpoint (``AUTH_URL`` points at it).
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
import jwt
import orjson
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from notifier_service.settings import NotifierSettings
from service_kit.db import Database
from service_kit.messaging.envelope import EventEnvelope, to_amqp_message
from service_kit.messaging.topology import (
    QueueSpec,
    dead_letter_exchange_name,
    declare_events_exchange,
    delete_consumer_queues,
)
from service_kit.revocations import RevocationFeed, RevocationList
from service_kit.security import JwksKeyStore, TokenVerifier
from service_kit.testing import free_port, serve_in_thread
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# -- tokens -------------------------------------------------------------------


@dataclass(frozen=True)
class JwtKeys:
    private_key: Ed25519PrivateKey
    kid: str
    jwks: dict[str, Any]

    @classmethod
    def generate(cls) -> JwtKeys:
        key = Ed25519PrivateKey.generate()
        kid = f"test-{uuid.uuid4().hex[:8]}"
        public = orjson.loads(OKPAlgorithm.to_jwk(key.public_key()))
        public.update({"kid": kid, "use": "sig", "alg": "EdDSA"})
        return cls(key, kid, {"keys": [public]})

    def token(
        self, settings: NotifierSettings, *, user_id: uuid.UUID, role: str, ttl: int = 600
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "role": role,
            "email": f"{role}-{user_id.hex[:6]}@example.edu",
            "iss": settings.jwt_issuer,
            "aud": settings.jwt_audience,
            "iat": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.private_key, algorithm="EdDSA", headers={"kid": self.kid})


class _NoRevocations:
    async def __call__(self, after: int) -> RevocationFeed:
        return RevocationFeed(revocations=[], next_after=after)


def static_verifier(keys: JwtKeys, settings: NotifierSettings) -> TokenVerifier:
    async def fetch() -> Mapping[str, Any]:
        return keys.jwks

    return TokenVerifier(
        JwksKeyStore(fetch, 300),
        settings.jwt_issuer,
        settings.jwt_audience,
        revocations=RevocationList(_NoRevocations(), max_staleness_seconds=3600),
    )


@dataclass(frozen=True)
class Caller:
    """A signed-in user of the tests: ``headers`` carry their bearer token."""

    user_id: uuid.UUID
    role: str
    headers: dict[str, str]


def caller(keys: JwtKeys, settings: NotifierSettings, role: str) -> Caller:
    user_id = uuid.uuid4()
    token = keys.token(settings, user_id=user_id, role=role)
    return Caller(user_id, role, {"Authorization": f"Bearer {token}"})


# -- auth's internal endpoints, as a real HTTP server ----------------------------------


@dataclass
class AuthStub:
    """Users auth knows (``users`` by id, as ``GET /internal/users/{id}`` answers them).

    ``failing`` answers 503. Like auth, it hands out service tokens and refuses an
    internal call without one (401). ``lookups`` counts the user lookups.
    """

    url: str = ""
    users: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    failing: bool = False
    lookups: int = 0
    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    """What ``/.well-known/jwks.json`` answers (a process under test verifies with it)."""
    issued: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_user(
        self,
        *,
        role: str = "student",
        full_name: str = "Ann Lee",
        email: str | None = None,
        active: bool = True,
        user_id: uuid.UUID | None = None,
    ) -> dict[str, Any]:
        user_id = user_id or uuid.uuid4()
        user = {
            "id": str(user_id),
            "email": email or f"user-{user_id.hex[:8]}@example.edu",
            "full_name": full_name,
            "role": role,
            "student_number": f"S-{user_id.hex[:6]}" if role == "student" else None,
            "active": active,
            "created_at": "2026-12-01T10:00:00Z",
            "version": 1,
        }
        with self.lock:
            self.users[user_id] = user
        return user


def start_auth_stub() -> tuple[AuthStub, Callable[[], None]]:
    stub = AuthStub()

    async def service_token(request: Request) -> JSONResponse:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme != "Basic":
            return JSONResponse({"error": {"code": "AUTH_INVALID_CREDENTIALS"}}, status_code=401)
        client_id = base64.b64decode(encoded).decode().partition(":")[0]
        token = f"svc-{uuid.uuid4().hex}"
        with stub.lock:
            stub.issued[token] = client_id
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": 300})

    async def user(request: Request) -> Response:
        _, _, token = request.headers.get("authorization", "").partition(" ")
        with stub.lock:
            if token not in stub.issued:
                return JSONResponse({"error": {"code": "AUTH_TOKEN_MISSING"}}, status_code=401)
            stub.lookups += 1
            if stub.failing:
                return JSONResponse({"error": {"code": "INTERNAL"}}, status_code=503)
            found = stub.users.get(uuid.UUID(request.path_params["user_id"]))
        if found is None:
            return JSONResponse({"error": {"code": "NOT_FOUND"}}, status_code=404)
        return JSONResponse(found)

    async def jwks(_: Request) -> Response:
        return JSONResponse(stub.jwks)

    async def revocations(request: Request) -> Response:
        after = int(request.query_params.get("after", "0"))
        return JSONResponse({"revocations": [], "next_after": after})

    app = Starlette(
        routes=[
            Route("/internal/oauth/token", service_token, methods=["POST"]),
            Route("/internal/users/{user_id}", user, methods=["GET"]),
            Route("/internal/revocations", revocations, methods=["GET"]),
            Route("/.well-known/jwks.json", jwks, methods=["GET"]),
        ]
    )
    stub.url, stop = serve_in_thread(app, "auth-stub")
    return stub, stop


# -- the notifier's tables, read in SQL ------------------------------------------------


async def scalar(db: Database, sql: str, **params: Any) -> Any:
    async with db.transaction() as session:
        return (await session.execute(text(sql), params)).scalar()


async def rows(db: Database, sql: str, **params: Any) -> list[Any]:
    async with db.transaction() as session:
        return list((await session.execute(text(sql), params)).mappings().all())


async def execute(db: Database, sql: str, **params: Any) -> None:
    async with db.transaction() as session:
        await session.execute(text(sql), params)


# -- events as the producers write them -----------------------------------------------


def published_event(
    exam_id: uuid.UUID, student_ids: list[uuid.UUID], *, chunk_no: int = 0, name: str = "Physics"
) -> dict[str, Any]:
    return {
        "exam_id": str(exam_id),
        "exam_code": "PHYS-1",
        "exam_name": name,
        "published_at": "2026-12-06T10:00:00Z",
        "generation": 1,
        "chunk_no": chunk_no,
        "chunk_count": chunk_no + 1,
        "recipients": [
            {"student_id": str(s), "student_number": f"S-{s.hex[:6]}"} for s in student_ids
        ],
    }


def updated_event(
    exam_id: uuid.UUID, generation: int, changes: dict[uuid.UUID, str]
) -> dict[str, Any]:
    return {
        "exam_id": str(exam_id),
        "exam_code": "PHYS-1",
        "exam_name": "Physics",
        "generation": generation,
        "chunk_no": 0,
        "chunk_count": 1,
        "recipients": [
            {"student_id": str(s), "student_number": f"S-{s.hex[:6]}", "change": change}
            for s, change in changes.items()
        ],
    }


def job_event(
    created_by: uuid.UUID, *, kind: str = "marks_import", status: str = "succeeded"
) -> dict[str, Any]:
    return {
        "job_id": str(uuid.uuid4()),
        "kind": kind,
        "status": status,
        "created_by": str(created_by),
        "exam_id": str(uuid.uuid4()),
        "dry_run": False,
        "format": "csv",
        "rows_total": 10,
        "rows_ok": 9,
        "rows_unchanged": 0,
        "rows_failed": 1,
        "error_code": None,
        "finished_at": "2026-12-06T10:00:00Z",
    }


def user_payload(user: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    return {**user, **changes}


# -- a real HTTP server for the app (the live stream needs one) -----------------------


@dataclass
class SseEvent:
    event: str | None = None
    id: str | None = None
    data: str = ""
    comment: str | None = None

    def json(self) -> Any:
        return orjson.loads(self.data)


async def sse_events(response: Any) -> Any:
    """The events (and comments) of an SSE response, as a browser's parser reads them."""
    current = SseEvent()
    async for line in response.aiter_lines():
        if line == "":
            if current.event is not None or current.data or current.id is not None:
                yield current
            current = SseEvent()
        elif line.startswith(":"):
            yield SseEvent(comment=line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                current.event = value
            elif name == "id":
                current.id = value
            elif name == "data":
                current.data = value if not current.data else current.data + "\n" + value


@asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """Serves ``app`` (with its lifespan) on a free port in this event loop."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the server stopped at start")
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


# -- the broker -----------------------------------------------------------------------


async def publish_event(
    settings: NotifierSettings,
    event_type: str,
    data: Mapping[str, Any],
    *,
    message_id: uuid.UUID | None = None,
    producer: str = "results",
    version: int = 1,
) -> uuid.UUID:
    """Publishes one enveloped event to the test's exchange, as a producer's relay would."""
    envelope = EventEnvelope(
        id=message_id or uuid.uuid4(),
        type=event_type,
        version=version,
        occurred_at=datetime.now(UTC),
        producer=producer,
        data=orjson.loads(orjson.dumps(dict(data), default=str)),
    )
    connection = await aio_pika.connect(settings.rabbitmq_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await declare_events_exchange(channel, settings)
        await exchange.publish(
            to_amqp_message(envelope, {}), routing_key=event_type, mandatory=True
        )
    finally:
        await connection.close()
    return envelope.id


async def drop_broker_objects(settings: NotifierSettings, specs: Sequence[QueueSpec]) -> None:
    """Deletes the test's queues and exchanges (unique names per test)."""
    connection = await aio_pika.connect(settings.rabbitmq_url)
    try:
        channel = await connection.channel()
        for spec in specs:
            await delete_consumer_queues(channel, settings, spec)
        await channel.exchange_delete(settings.events_exchange)
        await channel.exchange_delete(dead_letter_exchange_name(settings))
    finally:
        await connection.close()


async def queue_depth(settings: NotifierSettings, name: str) -> int:
    connection = await aio_pika.connect(settings.rabbitmq_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        return int(queue.declaration_result.message_count or 0)
    finally:
        await connection.close()


async def eventually(check: Callable[[], Any], *, timeout: float = 20.0) -> Any:
    """Polls ``check`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
