"""A notifier API process asked to stop (SIGTERM) ends its open live streams at once,
with a last comment, instead of holding the replica until uvicorn's graceful timeout
cuts them: clients reconnect elsewhere with their Last-Event-ID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from notifier_service.settings import NotifierSettings
from notifier_support import AuthStub, Caller, JwtKeys
from service_kit.testing import free_port

ROOT = Path(__file__).resolve().parents[3]


def test_sigterm_ends_open_streams_with_a_word(
    settings: NotifierSettings, auth_stub: AuthStub, jwt_keys: JwtKeys, student: Caller
) -> None:
    auth_stub.jwks = jwt_keys.jwks
    port = free_port()
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "LOG_JSON": "false",
        "DATABASE_URL": settings.database_url,
        "REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "QUEUE_PREFIX": settings.queue_prefix,
        "EVENTS_EXCHANGE": settings.events_exchange,
        "AUTH_URL": auth_stub.url,
        "JWKS_URL": f"{auth_stub.url}/.well-known/jwks.json",
        "JWT_ISSUER": settings.jwt_issuer,
        "JWT_AUDIENCE": settings.jwt_audience,
        "NOTIFIER_RUN_WORKERS": "false",
        "NOTIFIER_PORT": str(port),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "notifier_service", "serve"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "did not start"
            time.sleep(0.2)

        lines: list[str] = []
        with (
            httpx.Client(timeout=httpx.Timeout(5, read=60)) as client,
            client.stream(
                "GET", f"{base}/api/v1/notifications/stream", headers=student.headers
            ) as response,
        ):
            assert response.status_code == 200
            for line in response.iter_lines():
                lines.append(line)
                if line.startswith("data: ") and "unread_count" in line:
                    server.send_signal(signal.SIGTERM)
        # Without the termination step the stream would end only when uvicorn's
        # graceful timeout cut it, with no last comment.
        assert ": the server is shutting down" in lines
        # uvicorn re-raises the SIGTERM it captured once it has shut down.
        assert server.wait(30) in (0, -signal.SIGTERM)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
