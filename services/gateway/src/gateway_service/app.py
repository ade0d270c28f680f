"""The gateway as one pure ASGI app: own endpoints, path checks, JWT, limit, proxy.

Order matters and is the contract of API.md: a path is checked and routed
first (404 for anything else), then the token is verified and the per-user
limit applied, all before any upstream is called.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

import orjson
from service_kit.errors import ErrorCode, Unauthorized, UpstreamUnavailable
from service_kit.health import Readiness
from service_kit.security import TokenVerifier, bearer_token
from starlette.types import Receive, Scope, Send

from gateway_service.metrics import AUTH_REJECTIONS, RATE_LIMITED
from gateway_service.openapi import OpenApiDocument
from gateway_service.proxy.upstream import UpstreamProxy
from gateway_service.ratelimit import RateLimiter
from gateway_service.responses import send_error, send_json
from gateway_service.routing import (
    HEALTHZ,
    OPENAPI,
    READYZ,
    is_safe_path,
    match_route,
    needs_token,
)

log = logging.getLogger(__name__)

Lifespan = Callable[[], AbstractAsyncContextManager[None]]
_WWW_AUTHENTICATE = (b"www-authenticate", b"Bearer")
_READ_METHODS = frozenset({"GET", "HEAD"})


def _authorization(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return str(value.decode("latin-1"))
    return None


def _declares_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return True
    return False


class GatewayApp:
    def __init__(
        self,
        *,
        proxy: UpstreamProxy,
        verifier: TokenVerifier | None,
        limiter: RateLimiter,
        readiness: Readiness,
        openapi: OpenApiDocument,
        lifespan: Lifespan,
    ) -> None:
        self._proxy = proxy
        self._verifier = verifier
        self._limiter = limiter
        self._readiness = readiness
        self._openapi = openapi
        self._lifespan = lifespan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._run_lifespan(receive, send)
        # websockets are not part of the API: the server refuses them.

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if method in _READ_METHODS and path in _OWN:
            await _OWN[path](self, scope, send)
            return
        raw_path: bytes = scope.get("raw_path") or path.encode()
        route = match_route(path) if is_safe_path(raw_path) else None
        if route is None:
            await send_error(send, ErrorCode.NOT_FOUND, close=_declares_body(scope))
            return
        scope["route"] = route
        if self._verifier is not None and needs_token(route, method, path):
            try:
                principal = await self._verifier.verify(bearer_token(_authorization(scope)))
            except Unauthorized as exc:
                AUTH_REJECTIONS.labels(exc.code.value).inc()
                await send_error(
                    send,
                    exc.code,
                    message=exc.message,
                    headers=[_WWW_AUTHENTICATE],
                    close=_declares_body(scope),
                )
                return
            except UpstreamUnavailable as exc:
                # The JWKS cannot be had (auth down past the keys' grace): a 503, so
                # clients retry instead of signing everybody out.
                AUTH_REJECTIONS.labels(exc.code.value).inc()
                await send_error(
                    send,
                    exc.code,
                    message=exc.message,
                    headers=[(k.lower().encode(), v.encode()) for k, v in exc.headers.items()],
                    close=_declares_body(scope),
                )
                return
            retry_after = await self._limiter.retry_after(str(principal.user_id))
            if retry_after is not None:
                RATE_LIMITED.inc()
                await send_error(
                    send,
                    ErrorCode.RATE_LIMITED,
                    headers=[(b"retry-after", str(retry_after).encode())],
                    close=_declares_body(scope),
                )
                return
        await self._proxy.forward(scope, receive, send, route)

    async def _healthz(self, scope: Scope, send: Send) -> None:
        scope["route"] = HEALTHZ
        await send_json(send, 200, b'{"status":"ok"}')

    async def _readyz(self, scope: Scope, send: Send) -> None:
        scope["route"] = READYZ
        ready, checks = await self._readiness.report()
        body = {"status": "ready" if ready else "unavailable", "checks": checks}
        await send_json(send, 200 if ready else 503, orjson.dumps(body))

    async def _openapi_json(self, scope: Scope, send: Send) -> None:
        scope["route"] = OPENAPI
        await send_json(send, 200, await self._openapi.body())

    async def _run_lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        async with contextlib.AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(self._lifespan())
            except Exception as exc:
                log.exception("gateway failed to start")
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            assert message["type"] == "lifespan.shutdown"
        await send({"type": "lifespan.shutdown.complete"})


_OWN: dict[str, Callable[[GatewayApp, Scope, Send], Awaitable[None]]] = {
    "/healthz": GatewayApp._healthz,
    "/readyz": GatewayApp._readyz,
    "/openapi.json": GatewayApp._openapi_json,
}
