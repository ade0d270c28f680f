"""Forwards one request to its upstream and streams the answer back.

One pooled aiohttp session serves every upstream (ADR 0003: httpx measured
several times slower under concurrency). Its connector keeps idle connections
for less time than the upstreams' own keep-alive, so a pooled socket is never
one the upstream is about to close; a bodyless idempotent request that still
meets a socket closed under it is retried once on a fresh connection.

Failures before the upstream answered become 503 ``UPSTREAM_UNAVAILABLE`` with
``Retry-After`` (refused, unreachable, too slow, reset), never 500. Failures
after the answer started can only cut the response short: the status line is
already on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import aiohttp
from prometheus_client import Counter
from service_kit.context import current_request_id
from service_kit.errors import ErrorCode
from starlette.types import Message, Receive, Scope, Send
from yarl import URL

from gateway_service.metrics import UpstreamMetrics
from gateway_service.proxy.body import RequestBody
from gateway_service.proxy.headers import downstream_response_headers, upstream_request_headers
from gateway_service.responses import send_error
from gateway_service.routing import Route
from gateway_service.settings import GatewaySettings

log = logging.getLogger(__name__)

# Responses up to this size with a declared length are read in one go and sent
# as one message; bigger or unsized ones are streamed chunk by chunk.
SMALL_RESPONSE_BYTES = 64 * 1024
_RETRYABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_NO_BODY_STATUSES = frozenset({204, 304})


class UpstreamProxy:
    """Forwards requests to the upstreams through one pooled client session."""

    def __init__(self, settings: GatewaySettings) -> None:
        self._settings = settings
        self._bases = settings.upstreams
        self._max_body = settings.max_body_bytes
        self._max_upload = settings.max_upload_bytes
        self._retry_after = str(settings.upstream_retry_after_seconds)
        connect = settings.upstream_connect_timeout_seconds
        self._timeout = aiohttp.ClientTimeout(
            total=settings.upstream_timeout_seconds, connect=connect, sock_connect=connect
        )
        self._transfer_timeout = aiohttp.ClientTimeout(
            total=settings.upstream_transfer_timeout_seconds,
            connect=connect,
            sock_connect=connect,
            sock_read=settings.upstream_idle_read_timeout_seconds,
        )
        self._metrics = UpstreamMetrics(tuple(self._bases))
        self._session: aiohttp.ClientSession | None = None
        self._last_warning = float("-inf")

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("UpstreamProxy.start() was not awaited")
        return self._session

    async def start(self) -> None:
        s = self._settings
        connector = aiohttp.TCPConnector(
            limit=s.upstream_pool_size,
            limit_per_host=s.upstream_pool_per_host,
            keepalive_timeout=s.upstream_keepalive_seconds,
            ttl_dns_cache=60,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # A cookie jar would carry one user's upstream Set-Cookie into the
            # next user's request: the gateway must keep no client state.
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            timeout=self._timeout,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def base_url(self, upstream: str) -> str:
        return self._bases[upstream]

    async def forward(self, scope: Scope, receive: Receive, send: Send, route: Route) -> None:
        method: str = scope["method"]
        client = scope.get("client")
        headers, framing = upstream_request_headers(
            scope["headers"],
            client[0] if client else "unknown",
            scope.get("scheme", "http"),
            current_request_id(),
        )
        query: bytes = scope.get("query_string", b"")
        if framing.invalid or not query.isascii():
            await send_error(send, ErrorCode.BAD_REQUEST, close=True)
            return
        limit = self._max_upload if route.upload else self._max_body
        if framing.content_length is not None and framing.content_length > limit:
            self._metrics.body_too_large.inc()
            await send_error(send, ErrorCode.PAYLOAD_TOO_LARGE, close=True)
            return
        body = RequestBody(receive, limit) if framing.has_body else None

        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        target = self._bases[route.upstream] + raw_path.decode("ascii")
        if query:
            target += "?" + query.decode("ascii")
        url = URL(target, encoded=True)
        timeout = self._transfer_timeout if route.transfer else self._timeout
        upstream_metrics = self._metrics.for_upstream(route.upstream)

        started = time.perf_counter()
        attempts = 2 if body is None and method in _RETRYABLE_METHODS else 1
        response: aiohttp.ClientResponse | None = None
        for attempt in range(attempts):
            try:
                response = await self.session.request(
                    method,
                    url,
                    headers=headers,
                    data=body.chunks() if body is not None else None,
                    allow_redirects=False,
                    timeout=timeout,
                )
                break
            except aiohttp.ClientConnectorError as exc:
                # Refused or unreachable: a second try would fail the same way.
                await self._fail(scope, receive, send, body, upstream_metrics.unavailable, exc)
                return
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                # A pooled connection closed by the upstream as we reused it.
                if attempt + 1 < attempts:
                    continue
                await self._fail(scope, receive, send, body, upstream_metrics.unavailable, exc)
                return
            except TimeoutError as exc:
                await self._fail(scope, receive, send, body, upstream_metrics.timeout, exc)
                return
            except aiohttp.ClientError as exc:
                await self._fail(scope, receive, send, body, upstream_metrics.unavailable, exc)
                return
        assert response is not None
        upstream_metrics.latency.observe(time.perf_counter() - started)
        try:
            await self._relay(scope, receive, send, response, body)
        finally:
            response.release()

    async def _fail(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        body: RequestBody | None,
        counter: Counter | None,
        exc: BaseException,
    ) -> None:
        if body is not None and body.client_gone:
            return  # nobody is left to answer
        if body is not None and body.too_large:
            self._metrics.body_too_large.inc()
            await body.linger()
            await send_error(send, ErrorCode.PAYLOAD_TOO_LARGE, close=True)
            return
        if counter is not None:
            counter.inc()
        # One line a second is enough to tell an outage; the metric counts them all.
        now = time.monotonic()
        if now - self._last_warning >= 1.0:
            self._last_warning = now
            log.warning(
                "upstream unavailable",
                extra={
                    "path": scope["path"],
                    "error": type(exc).__name__,
                    "detail": str(exc)[:200],
                },
            )
        unread_body = body is not None and not body.done
        await send_error(
            send,
            ErrorCode.UPSTREAM_UNAVAILABLE,
            headers=[(b"retry-after", self._retry_after.encode())],
            close=unread_body,
        )

    async def _relay(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        response: aiohttp.ClientResponse,
        body: RequestBody | None,
    ) -> None:
        headers = downstream_response_headers(response.raw_headers)
        status = response.status
        if body is not None and not body.done:
            # The upstream answered before reading the whole body: the rest of it
            # is still on the client connection, which cannot be reused.
            headers.append((b"connection", b"close"))
        start: Message = {"type": "http.response.start", "status": status, "headers": headers}
        length = response.content_length
        if scope["method"] == "HEAD" or status in _NO_BODY_STATUSES:
            await send(start)
            await send({"type": "http.response.body", "body": b""})
            return
        if length is not None and length <= SMALL_RESPONSE_BYTES:
            try:
                content = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                await self._fail(scope, receive, send, body, None, exc)
                return
            await send(start)
            await send({"type": "http.response.body", "body": content})
            return
        await send(start)
        await self._stream(receive, send, response, watch_disconnect=body is None or body.done)

    async def _stream(
        self,
        receive: Receive,
        send: Send,
        response: aiohttp.ClientResponse,
        *,
        watch_disconnect: bool,
    ) -> None:
        # uvicorn drops writes to a closed connection silently, so only a
        # http.disconnect tells us the client left; without it a 40 MB download
        # to a client that went away would still be read to the end.
        watcher: asyncio.Task[None] | None = None
        if watch_disconnect:
            watcher = asyncio.create_task(_close_on_disconnect(receive, response))
        try:
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Returning without finishing makes uvicorn close the connection, so
            # the client sees a cut response, never a silently truncated one.
            if watcher is None or not watcher.done():
                log.warning(
                    "upstream response cut short",
                    extra={"error": type(exc).__name__, "detail": str(exc)[:200]},
                )
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher


async def _close_on_disconnect(receive: Receive, response: aiohttp.ClientResponse) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            response.close()
            return
