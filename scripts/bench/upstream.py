"""The benchmark's upstream: a small, fast, authenticated endpoint.

Pure ASGI on uvicorn (uvloop + httptools), as the platform's services run.
``GET /api/v1/exams/{id}`` answers a small JSON document when the request
carries a bearer token (presence only: the point is to measure the proxy, not
a second verification); ``/.well-known/jwks.json`` serves the JWKS from the
``BENCH_JWKS`` environment variable so the gateway can verify real tokens.

Run: ``python scripts/bench/upstream.py PORT``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import uvicorn

JWKS = os.environ.get("BENCH_JWKS", '{"keys": []}').encode()
BODY = (
    b'{"id":"5f0c6f1e-8d1a-4c4e-9a7e-2f3b4c5d6e7f","code":"MATH-101","name":"Algebra I",'
    b'"status":"published","pass_percent":40.0,"results_stale":false}'
)
_JSON = [(b"content-type", b"application/json")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            message = await receive()
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            assert message["type"] == "lifespan.shutdown"
            await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"]
    if path == "/.well-known/jwks.json":
        status, body = 200, JWKS
    elif path.startswith("/api/v1/exams/"):
        authorized = any(
            name == b"authorization" and value.startswith(b"Bearer ")
            for name, value in scope["headers"]
        )
        status, body = (200, BODY) if authorized else (401, b'{"error":"missing token"}')
    else:
        status, body = 404, b'{"error":"not found"}'
    headers = [*_JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=75,
    )
