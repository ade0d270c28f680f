"""Pure ASGI middleware of the kit (no BaseHTTPMiddleware: it buffers and costs a task)."""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service_kit.context import REQUEST_ID_HEADER, request_id_var, sane_request_id
from service_kit.handlers import unexpected_error_response

log = logging.getLogger("service_kit.errors")

_HEADER_BYTES = REQUEST_ID_HEADER.encode()
_AUTHORIZATION = b"authorization"
_CACHE_CONTROL = b"cache-control"
_NOSNIFF = (b"x-content-type-options", b"nosniff")
_NO_STORE = (_CACHE_CONTROL, b"no-store")


class RequestIdMiddleware:
    """Takes the caller's sane ``X-Request-ID`` or makes one, and echoes it back.

    It also adds the headers every answer carries: ``X-Content-Type-Options:
    nosniff`` (a browser must not run a JSON error as a script), and for a
    request that sent ``Authorization``, ``Cache-Control: no-store`` unless the
    route chose its own, so no shared cache keeps one user's data. Done in the
    one pass over the headers this middleware makes anyway: the gateway pays
    two appended tuples, nothing more.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        authenticated = False
        for name, value in scope["headers"]:
            if name == _HEADER_BYTES:
                if incoming is None:
                    incoming = value.decode("latin-1")
            elif name == _AUTHORIZATION:
                authenticated = True
        request_id = sane_request_id(incoming)
        token = request_id_var.set(request_id)
        raw_id = request_id.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = []
                cache_control = False
                for name, value in message.get("headers", ()):
                    if name == _HEADER_BYTES or name == _NOSNIFF[0]:
                        continue
                    if name == _CACHE_CONTROL:
                        cache_control = True
                    headers.append((name, value))
                headers.append((_HEADER_BYTES, raw_id))
                headers.append(_NOSNIFF)
                if authenticated and not cache_control:
                    headers.append(_NO_STORE)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


class UnhandledErrorMiddleware:
    """Answers ``INTERNAL`` in the envelope for anything the handlers did not map
    (``UPSTREAM_UNAVAILABLE`` when it is the database that cannot serve).

    Starlette hands unmapped exceptions to its outermost ServerErrorMiddleware,
    which runs after our request-id context is gone; catching them here keeps
    the request id in the body and header, and the 500 in the metrics.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception as exc:
            if started:
                log.error(
                    "unhandled error on %s %s", scope.get("method"), scope.get("path"), exc_info=exc
                )
                raise
            response = unexpected_error_response(
                str(scope.get("method")), str(scope.get("path")), exc
            )
            await response(scope, receive, send)
