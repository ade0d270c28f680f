"""Helpers of the bulk tests: tokens, the results stub, rows of bulk's tables, test files.

Copied in small from ``services/results/tests/results_support.py`` (a test package
never imports another service's): test Ed25519 keys with a static JWKS for the
token verifier, and a tiny real HTTP server standing in for results' internal
endpoints and auth's service-token endpoint (``RESULTS_URL`` and ``AUTH_URL``
both point at it).
"""

from __future__ import annotations

import base64
import csv
import io
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt
import orjson
import uvicorn
from bulk_service.settings import BulkSettings
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from service_kit.db import Database
from service_kit.revocations import RevocationFeed, RevocationList
from service_kit.security import JwksKeyStore, TokenVerifier
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
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

    def token(self, settings: BulkSettings, *, user_id: uuid.UUID, role: str) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "role": role,
            "email": f"{role}-{user_id.hex[:6]}@example.edu",
            "iss": settings.jwt_issuer,
            "aud": settings.jwt_audience,
            "iat": now,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.private_key, algorithm="EdDSA", headers={"kid": self.kid})


class _NoRevocations:
    async def __call__(self, after: int) -> RevocationFeed:
        return RevocationFeed(revocations=[], next_after=after)


def static_verifier(keys: JwtKeys, settings: BulkSettings) -> TokenVerifier:
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


def caller(keys: JwtKeys, settings: BulkSettings, role: str) -> Caller:
    user_id = uuid.uuid4()
    token = keys.token(settings, user_id=user_id, role=role)
    return Caller(user_id, role, {"Authorization": f"Bearer {token}"})


# -- results' internal endpoints (and auth's token endpoint), as a real HTTP server ----


@dataclass
class ResultsStub:
    """Exams results knows (``exams``), their NDJSON result lines (``results``).

    ``failing`` answers 503 on every exam route.
    Like auth, it hands out service tokens; like results, it refuses an internal
    call without one of them (401).
    """

    url: str = ""
    exams: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    results: dict[uuid.UUID, list[dict[str, Any]]] = field(default_factory=dict)
    failing: bool = False
    issued: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_exam(
        self,
        subjects: Sequence[tuple[str, int]] = (("MATH", 100), ("PHYS", 50)),
        *,
        status: str = "draft",
    ) -> uuid.UUID:
        exam_id = uuid.uuid4()
        with self.lock:
            self.exams[exam_id] = {
                "id": str(exam_id),
                "code": f"EX-{exam_id.hex[:6]}",
                "name": "Finals",
                "status": status,
                "subjects": [
                    {"code": code, "name": code.title(), "max_mark": mark, "examiner_ids": []}
                    for code, mark in subjects
                ],
            }
        return exam_id


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_results_stub() -> tuple[ResultsStub, Callable[[], None]]:
    stub = ResultsStub()

    async def service_token(request: Request) -> JSONResponse:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme != "Basic":
            return JSONResponse({"error": {"code": "AUTH_INVALID_CREDENTIALS"}}, status_code=401)
        client_id = base64.b64decode(encoded).decode().partition(":")[0]
        token = f"svc-{uuid.uuid4().hex}"
        with stub.lock:
            stub.issued[token] = client_id
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": 300})

    def _authorised(request: Request) -> bool:
        _, _, token = request.headers.get("authorization", "").partition(" ")
        with stub.lock:
            return token in stub.issued

    async def exam(request: Request) -> Response:
        if not _authorised(request):
            return JSONResponse({"error": {"code": "AUTH_TOKEN_MISSING"}}, status_code=401)
        with stub.lock:
            if stub.failing:
                return JSONResponse({"error": {"code": "INTERNAL"}}, status_code=503)
            found = stub.exams.get(uuid.UUID(request.path_params["exam_id"]))
        if found is None:
            return JSONResponse({"error": {"code": "NOT_FOUND"}}, status_code=404)
        return JSONResponse(found)

    async def results(request: Request) -> Response:
        if not _authorised(request):
            return JSONResponse({"error": {"code": "AUTH_TOKEN_MISSING"}}, status_code=401)
        exam_id = uuid.UUID(request.path_params["exam_id"])
        with stub.lock:
            if stub.failing:
                return JSONResponse({"error": {"code": "INTERNAL"}}, status_code=503)
            if exam_id not in stub.exams:
                return JSONResponse({"error": {"code": "NOT_FOUND"}}, status_code=404)
            lines = list(stub.results.get(exam_id, []))

        async def body() -> Any:
            for line in lines:
                yield orjson.dumps(line) + b"\n"

        return StreamingResponse(body(), media_type="application/x-ndjson")

    app = Starlette(
        routes=[
            Route("/internal/oauth/token", service_token, methods=["POST"]),
            Route("/internal/exams/{exam_id}", exam, methods=["GET"]),
            Route("/internal/exams/{exam_id}/results.ndjson", results, methods=["GET"]),
        ]
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="results-stub", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the results stub did not start")
        time.sleep(0.02)
    stub.url = f"http://127.0.0.1:{port}"

    def stop() -> None:
        server.should_exit = True
        thread.join(5)

    return stub, stop


# -- bulk's tables, read in SQL -----------------------------------------------------


async def scalar(db: Database, sql: str, **params: Any) -> Any:
    async with db.transaction() as session:
        return (await session.execute(text(sql), params)).scalar()


async def rows(db: Database, sql: str, **params: Any) -> list[Any]:
    async with db.transaction() as session:
        return list((await session.execute(text(sql), params)).mappings().all())


async def execute(db: Database, sql: str, **params: Any) -> None:
    async with db.transaction() as session:
        await session.execute(text(sql), params)


async def count_jobs(db: Database) -> int:
    return int(await scalar(db, "SELECT count(*) FROM bulk.jobs"))


async def count_parts(db: Database, job_id: uuid.UUID | None = None) -> int:
    if job_id is None:
        return int(await scalar(db, "SELECT count(*) FROM bulk.job_files"))
    return int(await scalar(db, "SELECT count(*) FROM bulk.job_files WHERE job_id = :j", j=job_id))


async def stored_upload(db: Database, job_id: uuid.UUID) -> tuple[bytes, int]:
    """The upload's bytes as stored, and how many parts hold them."""
    found = await rows(
        db,
        "SELECT part_no, data FROM bulk.job_files WHERE job_id = :j AND role = 'upload' "
        "ORDER BY part_no",
        j=job_id,
    )
    assert [r["part_no"] for r in found] == list(range(len(found)))
    return b"".join(bytes(r["data"]) for r in found), len(found)


async def outbox(db: Database, event_type: str | None = None) -> list[Any]:
    sql = "SELECT type, payload, routing_key FROM bulk.outbox"
    if event_type is not None:
        return await rows(db, sql + " WHERE type = :t ORDER BY occurred_at", t=event_type)
    return await rows(db, sql + " ORDER BY occurred_at")


async def outbox_of(db: Database, event_type: str, job_id: uuid.UUID) -> list[dict[str, Any]]:
    return [
        dict(r["payload"])
        for r in await outbox(db, event_type)
        if r["payload"]["job_id"] == str(job_id)
    ]


async def job_errors(db: Database, job_id: uuid.UUID) -> list[Any]:
    return await rows(
        db,
        "SELECT row_no, column_name, code, message, value FROM bulk.job_errors "
        "WHERE job_id = :j ORDER BY row_no, seq",
        j=job_id,
    )


async def staged(db: Database, job_id: uuid.UUID) -> list[Any]:
    return await rows(
        db,
        "SELECT seq, row_no, dedupe_key, payload FROM bulk.staged_entries "
        "WHERE job_id = :j ORDER BY seq",
        j=job_id,
    )


# -- test files ---------------------------------------------------------------------


def csv_bytes(lines: Iterable[Sequence[object]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(lines)
    return out.getvalue().encode()


def xlsx_bytes(lines: Iterable[Sequence[object]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("marks")
    for line in lines:
        sheet.append(list(line))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def multipart(
    data: bytes, *, filename: str = "marks.csv", content_type: str = "text/csv", name: str = "file"
) -> tuple[bytes, str]:
    """A multipart/form-data body with one file field; returns (body, content type)."""
    boundary = f"----bulk{uuid.uuid4().hex}"
    body = (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"
