"""Helpers of the results tests: tokens, the auth stub, broker plumbing, test data."""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aio_pika
import jwt
import orjson
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from results_service.generation.autoregen import AUTOREGEN_QUEUE
from results_service.messaging.mark_chunks import MARK_CHUNKS_QUEUE
from results_service.messaging.user_events import USER_EVENTS_QUEUE
from results_service.settings import ResultsSettings
from results_service.store.students import StudentRecord, upsert_students
from service_kit.db import Database
from service_kit.messaging.envelope import EventEnvelope, to_amqp_message
from service_kit.messaging.topology import (
    dead_letter_exchange_name,
    declare_events_exchange,
    delete_consumer_queues,
)
from service_kit.revocations import RevocationFeed, RevocationList, RevocationRecord
from service_kit.security import JwksKeyStore, TokenVerifier
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
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
        self,
        settings: ResultsSettings,
        *,
        user_id: uuid.UUID,
        role: str,
        ttl_seconds: int = 300,
        session_id: uuid.UUID | None = None,
        access_epoch: int | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "role": role,
            "email": f"{role}-{user_id.hex[:6]}@example.edu",
            "iss": settings.jwt_issuer,
            "aud": settings.jwt_audience,
            "iat": now,
            "exp": now + ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        if session_id is not None:
            claims["sid"] = str(session_id)
        if access_epoch is not None:
            claims["access_epoch"] = access_epoch
        return jwt.encode(claims, self.private_key, algorithm="EdDSA", headers={"kid": self.kid})

    def service_token(
        self,
        settings: ResultsSettings,
        *,
        client_id: str = "bulk",
        audience: str = "internal:results",
    ) -> str:
        """A service token as auth issues them (docs/adr/0011)."""
        now = int(time.time())
        claims = {
            "sub": f"service:{client_id}",
            "client_id": client_id,
            "token_use": "service",
            "iss": settings.jwt_issuer,
            "aud": audience,
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.private_key, algorithm="EdDSA", headers={"kid": self.kid})


class RevocationBoard:
    """auth's revocation feed, in memory: tests revoke by adding records."""

    def __init__(self) -> None:
        self.records: list[RevocationRecord] = []

    def revoke_session(self, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        self._add(user_id, session_id=session_id)

    def raise_epoch(self, user_id: uuid.UUID, min_access_epoch: int) -> None:
        self._add(user_id, min_access_epoch=min_access_epoch)

    def _add(self, user_id: uuid.UUID, **scope: Any) -> None:
        expires = datetime.fromtimestamp(time.time() + 960, UTC)
        self.records.append(
            RevocationRecord(
                seq=len(self.records) + 1, user_id=user_id, expires_at=expires, **scope
            )
        )

    async def __call__(self, after: int) -> RevocationFeed:
        return RevocationFeed(revocations=self.records[after:], next_after=len(self.records))


def static_verifier(
    keys: JwtKeys, settings: ResultsSettings, board: RevocationBoard | None = None
) -> TokenVerifier:
    async def fetch() -> Mapping[str, Any]:
        return keys.jwks

    return TokenVerifier(
        JwksKeyStore(fetch, 300),
        settings.jwt_issuer,
        settings.jwt_audience,
        revocations=RevocationList(board or RevocationBoard(), max_staleness_seconds=3600),
    )


@dataclass(frozen=True)
class Caller:
    """A signed-in user of the tests: ``headers`` carry their bearer token."""

    user_id: uuid.UUID
    role: str
    headers: dict[str, str]


def caller(keys: JwtKeys, settings: ResultsSettings, role: str) -> Caller:
    user_id = uuid.uuid4()
    token = keys.token(settings, user_id=user_id, role=role)
    return Caller(user_id, role, {"Authorization": f"Bearer {token}"})


# -- auth's internal lookup, as a real HTTP server ------------------------------


@dataclass
class AuthStub:
    """Students auth knows; ``lookups`` records each call's numbers; ``failing`` -> 503.

    Like auth, it hands out service tokens (``issued``: token -> client id of the
    Basic credential) and answers a lookup without one of them 401.
    """

    url: str = ""
    students: dict[str, dict[str, Any]] = field(default_factory=dict)
    lookups: list[list[str]] = field(default_factory=list)
    failing: bool = False
    issued: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_student(self, number: str, *, active: bool = True) -> uuid.UUID:
        user_id = uuid.uuid4()
        with self.lock:
            self.students[number] = {
                "id": str(user_id),
                "email": f"{number.lower()}@example.edu",
                "full_name": f"Student {number}",
                "role": "student",
                "student_number": number,
                "active": active,
                "created_at": datetime.now(UTC).isoformat(),
            }
        return user_id

    def lookups_of(self, numbers: Iterable[str]) -> list[list[str]]:
        wanted = set(numbers)
        with self.lock:
            return [call for call in self.lookups if wanted & set(call)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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

    async def lookup(request: Request) -> JSONResponse:
        _, _, token = request.headers.get("authorization", "").partition(" ")
        with stub.lock:
            if token not in stub.issued:
                return JSONResponse({"error": {"code": "AUTH_TOKEN_MISSING"}}, status_code=401)
        body = await request.json()
        numbers = list(body["student_numbers"])
        with stub.lock:
            stub.lookups.append(numbers)
            if stub.failing:
                return JSONResponse({"error": {"code": "INTERNAL"}}, status_code=503)
            found = [stub.students[n] for n in numbers if n in stub.students]
        return JSONResponse({"items": found})

    app = Starlette(
        routes=[
            Route("/internal/oauth/token", service_token, methods=["POST"]),
            Route("/internal/students/lookup", lookup, methods=["POST"]),
        ]
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="auth-stub", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the auth stub did not start")
        time.sleep(0.02)
    stub.url = f"http://127.0.0.1:{port}"

    def stop() -> None:
        server.should_exit = True
        thread.join(5)

    return stub, stop


# -- broker plumbing ------------------------------------------------------------


async def drop_broker_objects(settings: ResultsSettings) -> None:
    """Deletes the test's queues and exchanges (unique names per test)."""
    connection = await aio_pika.connect(settings.rabbitmq_url)
    try:
        channel = await connection.channel()
        for spec in (USER_EVENTS_QUEUE, MARK_CHUNKS_QUEUE, AUTOREGEN_QUEUE):
            await delete_consumer_queues(channel, settings, spec)
        await channel.exchange_delete(settings.events_exchange)
        await channel.exchange_delete(dead_letter_exchange_name(settings))
    finally:
        await connection.close()


async def publish_event(
    settings: ResultsSettings,
    event_type: str,
    data: Mapping[str, Any],
    *,
    routing_key: str | None = None,
    message_id: uuid.UUID | None = None,
    version: int = 1,
    producer: str = "tests",
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
            to_amqp_message(envelope, {}), routing_key=routing_key or event_type, mandatory=True
        )
    finally:
        await connection.close()
    return envelope.id


class EventTap:
    """A temporary queue on the test's exchange that collects events of some types."""

    def __init__(self, settings: ResultsSettings, routing_keys: Iterable[str]) -> None:
        self._settings = settings
        self._keys = list(routing_keys)
        self.received: list[EventEnvelope] = []
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None

    async def __aenter__(self) -> EventTap:
        self._connection = await aio_pika.connect_robust(self._settings.rabbitmq_url)
        channel = await self._connection.channel()
        exchange = await declare_events_exchange(channel, self._settings)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for key in self._keys:
            await queue.bind(exchange, routing_key=key)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                self.received.append(EventEnvelope.from_body(message.body))

        await queue.consume(on_message)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def wait_for(
        self, count: int, *, timeout: float = 15.0, event_type: str | None = None
    ) -> list[EventEnvelope]:
        deadline = time.monotonic() + timeout
        while True:
            matching = [e for e in self.received if event_type is None or e.type == event_type]
            if len(matching) >= count:
                return matching
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} events, got {len(matching)}: {matching}")
            await asyncio.sleep(0.05)


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 15.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout}s")
        await asyncio.sleep(0.05)


# -- test data -----------------------------------------------------------------


def exam_payload(code: str | None = None, **overrides: Any) -> dict[str, Any]:
    """RESULTS.md's worked example as a POST /exams body."""
    body: dict[str, Any] = {
        "code": code or f"EX-{uuid.uuid4().hex[:8]}",
        "name": "Finals",
        "term": "2026 spring",
        "subjects": [
            {"code": "MATH", "name": "Mathematics", "max_mark": 100, "pass_mark": 40, "credits": 2},
            {"code": "PHYS", "name": "Physics", "max_mark": 50, "pass_mark": 20, "credits": 1},
        ],
        "grading_scale": [
            {"grade": "A", "min_percent": 80, "points": 4},
            {"grade": "B", "min_percent": 60, "points": 3},
            {"grade": "C", "min_percent": 40, "points": 2},
            {"grade": "F", "min_percent": 0, "points": 0},
        ],
        "pass_percent": 40,
        "rank_method": "competition",
    }
    body.update(overrides)
    return body


async def seed_students(db: Database, numbers: Iterable[str]) -> dict[str, uuid.UUID]:
    """Puts students straight into the read model (as if their events had arrived)."""
    records = [
        StudentRecord(uuid.uuid4(), n, f"Student {n}", f"{n.lower()}@example.edu", True, 1)
        for n in numbers
    ]
    async with db.transaction() as session:
        for start in range(0, len(records), 1000):
            await upsert_students(session, records[start : start + 1000])
    return {r.student_number: r.user_id for r in records}


def present(number: str, subject: str, mark: float | int | str | Decimal) -> dict[str, Any]:
    return {"student_number": number, "subject_code": subject, "status": "present", "mark": mark}
