"""Real network fakes for the gateway tests: upstream servers, a JWKS, the gateway process.

The upstreams are small aiohttp servers on free loopback ports, run in a thread
of their own so every test (whatever its event loop) can reach them. The
gateway runs as a real process started like production (``python -m
gateway_service``), configured only through its environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
from aiohttp import BasicAuth, web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

ISSUER = "exam-results-auth"
AUDIENCE = "exam-results"
UPSTREAM_NAMES = ("auth", "results", "bulk", "notifier")
MIB = 1024 * 1024
UPSTREAM_NAME = web.AppKey("upstream_name", str)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- keys


@dataclass
class SigningKey:
    kid: str
    private: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    def jwk(self) -> dict[str, Any]:
        entry: dict[str, Any] = OKPAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        entry.update({"kid": self.kid, "use": "sig", "alg": "EdDSA"})
        return entry

    def token(self, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": str(uuid.uuid4()),
            "role": "admin",
            "email": "someone@example.edu",
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 900,
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        return jwt.encode(claims, self.private, algorithm="EdDSA", headers={"kid": self.kid})


# ---------------------------------------------------------------------- upstreams


@dataclass
class Hit:
    upstream: str
    method: str
    path: str
    request_id: str | None
    body_complete: bool = False


class FakeUpstreams:
    """Four upstreams (auth, results, bulk, notifier) echoing what reached them."""

    def __init__(self) -> None:
        self.jwks_keys: list[dict[str, Any]] = []
        # auth's revocation feed (records as /internal/revocations answers them),
        # and the service tokens handed out (token -> client id).
        self.revocations: list[dict[str, Any]] = []
        self.service_tokens: dict[str, str] = {}
        self.openapi: dict[str, dict[str, Any] | None] = {}
        self.hits: list[Hit] = []
        self.ports: dict[str, int] = {}
        self._loop = asyncio.new_event_loop()
        self._runners: list[web.AppRunner] = []
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    # -- lifecycle
    def start(self) -> FakeUpstreams:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        for name in UPSTREAM_NAMES:
            app = web.Application(client_max_size=200 * MIB)
            app[UPSTREAM_NAME] = name
            app.router.add_route("*", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None, keepalive_timeout=75)
            await runner.setup()
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            site = web.SockSite(runner, sock)
            await site.start()
            self.ports[name] = sock.getsockname()[1]
            self._runners.append(runner)

    async def _stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    # -- queries used by tests
    def hits_for(self, request_id: str) -> list[Hit]:
        return [h for h in list(self.hits) if h.request_id == request_id]

    def revoke_session(self, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        self._revoke({"user_id": str(user_id), "session_id": str(session_id)})

    def raise_epoch(self, user_id: uuid.UUID, min_access_epoch: int) -> None:
        self._revoke({"user_id": str(user_id), "min_access_epoch": min_access_epoch})

    def _revoke(self, scope: dict[str, Any]) -> None:
        expires = datetime.fromtimestamp(time.time() + 960, UTC).isoformat()
        self.revocations.append({"seq": len(self.revocations) + 1, "expires_at": expires, **scope})

    async def _auth_internal(self, request: web.Request) -> web.Response:
        """auth's token endpoint and revocation feed, as docs/adr/0011 describes them."""
        if request.path == "/internal/oauth/token":
            form = await request.post()
            basic = BasicAuth.decode(request.headers.get("Authorization", ""))
            token = f"svc-{uuid.uuid4().hex}"
            self.service_tokens[token] = basic.login
            assert form["grant_type"] == "client_credentials"
            return web.json_response({"access_token": token, "expires_in": 300})
        if request.path == "/internal/revocations":
            _, _, token = request.headers.get("Authorization", "").partition(" ")
            if token not in self.service_tokens:
                return web.json_response({"error": {"code": "AUTH_TOKEN_MISSING"}}, status=401)
            after = int(request.query.get("after", "0"))
            return web.json_response(
                {"revocations": self.revocations[after:], "next_after": len(self.revocations)}
            )
        return web.json_response({"error": {"code": "NOT_FOUND"}}, status=404)

    # -- the handler
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.app[UPSTREAM_NAME]
        path = request.path
        if name == "auth" and path == "/.well-known/jwks.json" and request.method == "GET":
            return web.json_response({"keys": list(self.jwks_keys)})
        if name == "auth" and path.startswith("/internal/"):
            return await self._auth_internal(request)
        if path == "/openapi.json":
            doc = self.openapi.get(name)
            if doc is None:
                return web.json_response({"detail": "no"}, status=500)
            return web.json_response(doc)
        hit = Hit(name, request.method, path, request.headers.get("X-Request-ID"))
        self.hits.append(hit)
        if "redirect_to" in request.query:
            # An absolute URL built from the Host the gateway sent, as Starlette's
            # slash redirect builds it.
            target = f"http://{request.host}{request.query['redirect_to']}"
            return web.Response(status=307, headers={"Location": target})
        if "slow" in path:
            await asyncio.sleep(float(request.query.get("seconds", "5")))
        if path.endswith("/download"):
            return await self._download(request, int(request.query.get("mb", "1")))
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            size += len(chunk)
        hit.body_complete = True
        headers: dict[str, list[str]] = {}
        for key, value in request.headers.items():
            headers.setdefault(key.lower(), []).append(value)
        # Like a kit service: nosniff always, and a route's own Cache-Control when asked.
        answer_headers = {"X-Content-Type-Options": "nosniff"}
        if "cache_control" in request.query:
            answer_headers["Cache-Control"] = request.query["cache_control"]
        return web.json_response(
            {
                "upstream": name,
                "method": request.method,
                "path": path,
                "raw_path": request.raw_path,
                "query": request.rel_url.raw_query_string,
                "headers": headers,
                "body_bytes": size,
                "body_sha256": digest.hexdigest(),
            },
            headers={
                "X-Upstream": name,
                "Server": "fake-upstream",
                "Access-Control-Allow-Origin": "*",
                "Connection": "keep-alive, X-Hop",
                "X-Hop": "must-not-pass",
                **answer_headers,
            },
        )

    async def _download(self, request: web.Request, mebibytes: int) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/csv"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = download_chunk()
        for _ in range(mebibytes * MIB // len(chunk)):
            await response.write(chunk)
        await response.write_eof()
        return response


def download_chunk() -> bytes:
    line = b"S0001,Ada Lovelace,complete,95.00,100.00,95.00,A,4.00,true,1\n"
    return (line * (65536 // len(line) + 1))[:65536]


# ------------------------------------------------------------------------ gateway


class GatewayProcess:
    """The gateway as a real process on a free port, configured by environment."""

    def __init__(self, upstreams: FakeUpstreams, **env: str) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self.redis_prefix = f"test:gateway:{uuid.uuid4().hex}:"
        self.env = {
            **os.environ,
            "ENVIRONMENT": "test",
            "LOG_LEVEL": "WARNING",
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(self.port),
            "GATEWAY_METRICS_PORT": str(self.metrics_port),
            "AUTH_URL": upstreams.url("auth"),
            "RESULTS_URL": upstreams.url("results"),
            "BULK_URL": upstreams.url("bulk"),
            "NOTIFIER_URL": upstreams.url("notifier"),
            "JWKS_URL": upstreams.url("auth") + "/.well-known/jwks.json",
            "JWT_ISSUER": ISSUER,
            "JWT_AUDIENCE": AUDIENCE,
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "REDIS_KEY_PREFIX": self.redis_prefix,
            "CORS_ALLOW_ORIGINS": "http://localhost:5173,https://app.example.edu",
            **env,
        }
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the process
            prefix="gateway-", suffix=".log", delete=False
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> GatewayProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway_service"],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited early:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gateway did not start:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def log(self) -> str:
        return Path(self._log.name).read_text(errors="replace")[-5000:]

    def memory_kib(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak RSS) of the gateway process, in KiB."""
        assert self.proc is not None
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
        return out


# ----------------------------------------------------------------------- raw HTTP


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


async def raw_exchange(
    port: int,
    head: bytes,
    body_chunks: list[bytes] = (),
    timeout: float = 5.0,  # type: ignore[assignment]
) -> RawResponse:
    """Sends bytes exactly as given (no client-side path normalisation) and reads one answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        for chunk in body_chunks:
            writer.write(chunk)
            await writer.drain()
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout)
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout)
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(reader.readexactly(length), timeout) if length else b""
        return RawResponse(status, headers, body)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
