"""Helpers of the notifier tests: tokens, the auth stub, rows of the notifier's tables.

Copied in small from ``services/bulk/tests/bulk_support.py`` (a test package
never imports another service's): test Ed25519 keys with a static JWKS for the
token verifier, and a tiny real HTTP server standing in for auth's internal
user lookup and its service-token endpoint (``AUTH_URL`` points at it).
"""

from __future__ import annotations

import base64
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
import orjson
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from notifier_service.settings import NotifierSettings
from service_kit.db import Database
from service_kit.revocations import RevocationFeed, RevocationList
from service_kit.security import JwksKeyStore, TokenVerifier
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

    app = Starlette(
        routes=[
            Route("/internal/oauth/token", service_token, methods=["POST"]),
            Route("/internal/users/{user_id}", user, methods=["GET"]),
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
