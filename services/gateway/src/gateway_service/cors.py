"""CORS as pure ASGI middleware, outside every other layer of the gateway.

Because it wraps everything, the gateway's own errors (401, 404, 413, 429,
503, even 500) carry the CORS headers for an allowed origin, so a browser app
can read the envelope instead of seeing an opaque network error.

* Allowed origin: ``Access-Control-Allow-Origin: <origin>`` (never ``*``),
  ``Access-Control-Allow-Credentials: true`` and the exposed headers.
* Any other origin: no ``Access-Control-Allow-*`` header at all.
* A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is answered
  here and never reaches an upstream: 204 with the methods, the requested
  headers and a max age for an allowed origin; 403 ``FORBIDDEN`` (envelope, no
  CORS headers) for any other origin, so curl and logs say why it failed.
  Both are counted in the metrics under the route label ``<preflight>``.
* ``Vary: Origin`` is on every response, since every response differs by
  Origin: a shared cache must not serve one origin's answer to another.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from service_kit.errors import ErrorCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway_service.responses import send_error
from gateway_service.routing import PREFLIGHT

ALLOWED_METHODS = b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
EXPOSED_HEADERS = b"X-Request-ID, Retry-After, Location, Content-Disposition"
# Header names are tokens (RFC 9110 5.6.2); anything else is not echoed back.
_HEADER_LIST = re.compile(rb"^[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$")
_VARY_ORIGIN = (b"vary", b"Origin")


class CorsMiddleware:
    def __init__(self, app: ASGIApp, allow_origins: Iterable[str], max_age_seconds: int) -> None:
        self.app = app
        self._origins = frozenset(o.encode() for o in allow_origins)
        self._max_age = str(max_age_seconds).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin: bytes | None = None
        request_method: bytes | None = None
        request_headers: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"access-control-request-method":
                request_method = value
            elif name == b"access-control-request-headers":
                request_headers = value
        allowed = origin is not None and origin in self._origins
        if scope["method"] == "OPTIONS" and origin is not None and request_method is not None:
            # Answered before the gateway routes, so nothing else names the route: the
            # metrics middleware outside us would count every preflight as <unmatched>.
            scope["route"] = PREFLIGHT
            await self._preflight(send, origin if allowed else None, request_headers)
            return
        extra = [_VARY_ORIGIN]
        if allowed:
            assert origin is not None
            extra += [
                (b"access-control-allow-origin", origin),
                (b"access-control-allow-credentials", b"true"),
                (b"access-control-expose-headers", EXPOSED_HEADERS),
            ]

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(
        self, send: Send, origin: bytes | None, request_headers: bytes | None
    ) -> None:
        vary = (b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
        if origin is None:
            await send_error(
                send, ErrorCode.FORBIDDEN, message="This origin is not allowed.", headers=[vary]
            )
            return
        headers = [
            vary,
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-allow-methods", ALLOWED_METHODS),
            (b"access-control-max-age", self._max_age),
        ]
        if request_headers and _HEADER_LIST.match(request_headers.strip()):
            headers.append((b"access-control-allow-headers", request_headers.strip()))
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
