"""Forwards one request to its upstream and streams the answer back.

Upstream connections come from the gateway's own pooled HTTP/1.1 client
(:mod:`gateway_service.proxy.client`, ADR 0008). Its pools keep idle
connections for less time than the upstreams' own keep-alive, so a pooled
socket is never one the upstream is about to close; a bodyless idempotent
request that still meets a socket closed under it is retried once on a fresh
connection.

Failures before the upstream answered become 503 ``UPSTREAM_UNAVAILABLE`` with
``Retry-After`` (refused, unreachable, too slow, reset, malformed), never 500.
Failures after the answer started can only cut the response short: the status
line is already on the wire.

Event streams (routes with ``stream=True``, the notifier's server-sent events)
differ in three ways. The upstream budgets bound only the wait for the answer's
head: the body then runs as long as the upstream keeps it open (the connect
timeout still makes a dead upstream a quick 503). Every chunk is passed on as it
arrives, uncompressed (``Accept-Encoding: identity`` upstream) and marked for
any proxy in front (``X-Accel-Buffering: no``, ``Cache-Control: no-cache`` unless
the upstream set one). And :meth:`UpstreamProxy.end_streams` ends the open ones
when the process is asked to stop, so they do not hold a rolling update for
the whole graceful shutdown (ADR 0016).

With tracing on, each exchange is a CLIENT span whose context the upstream gets
as its ``traceparent`` (:mod:`gateway_service.proxy.spans`, ADR 0021).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from prometheus_client import Counter
from service_kit.context import current_request_id
from service_kit.errors import ErrorCode
from service_kit.tracing import tracing_enabled
from starlette.types import Message, Receive, Scope, Send

from gateway_service.metrics import UpstreamMetrics
from gateway_service.proxy.body import BodyTooLarge, ClientGone, RequestBody
from gateway_service.proxy.client import (
    ExchangeTimeouts,
    OutgoingBody,
    UnsafeRequest,
    UpstreamClient,
)
from gateway_service.proxy.errors import UpstreamError, UpstreamTimeout
from gateway_service.proxy.headers import (
    UpstreamLocations,
    downstream_response_headers,
    identity_encoding,
    upstream_request_headers,
)
from gateway_service.proxy.pool import ConnectionPool, Origin
from gateway_service.proxy.response import UpstreamResponse
from gateway_service.proxy.spans import record_answer, record_failure, upstream_span
from gateway_service.responses import send_error
from gateway_service.routing import Route
from gateway_service.settings import GatewaySettings

log = logging.getLogger(__name__)

# Responses up to this size with a declared length are read in one go and sent
# as one message; bigger or unsized ones are streamed chunk by chunk. Request
# bodies declared this small are read before the upstream is called and sent
# with the head in one write; bigger or chunked ones are streamed.
SMALL_RESPONSE_BYTES = 64 * 1024
SMALL_REQUEST_BYTES = 64 * 1024
_RETRYABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_NO_BODY_STATUSES = frozenset({204, 304})
_NO_BUFFERING = (b"x-accel-buffering", b"no")
_NO_CACHE = (b"cache-control", b"no-cache")


class UpstreamProxy:
    """Forwards requests to the upstreams through the pooled client."""

    def __init__(self, settings: GatewaySettings) -> None:
        self._settings = settings
        self._origins = {name: Origin.parse(url) for name, url in settings.upstreams.items()}
        self._locations = UpstreamLocations(self._origins.values())
        self._max_body = settings.max_body_bytes
        self._max_upload = settings.max_upload_bytes
        self._retry_after = str(settings.upstream_retry_after_seconds).encode()
        self._timeouts = ExchangeTimeouts(settings.upstream_timeout_seconds)
        self._transfer_timeouts = ExchangeTimeouts(
            settings.upstream_transfer_timeout_seconds,
            idle_read=settings.upstream_idle_read_timeout_seconds,
        )
        self._stream_timeouts = ExchangeTimeouts(settings.upstream_timeout_seconds, until_head=True)
        self._streams: set[UpstreamResponse] = set()
        self._ending = False
        self._metrics = UpstreamMetrics(tuple(self._origins))
        self._client: UpstreamClient | None = None
        self._pools: dict[str, ConnectionPool] = {}
        self._last_warning = float("-inf")
        # Read once: with tracing off, forwarding does not touch OpenTelemetry at all.
        self._tracing = tracing_enabled()

    @property
    def client(self) -> UpstreamClient:
        if self._client is None:
            raise RuntimeError("UpstreamProxy.start() was not awaited")
        return self._client

    async def start(self) -> None:
        s = self._settings
        self._client = UpstreamClient(
            pool_size=s.upstream_pool_size,
            pool_per_host=s.upstream_pool_per_host,
            connect_timeout=s.upstream_connect_timeout_seconds,
            keepalive_seconds=s.upstream_keepalive_seconds,
        )
        self._pools = {name: self._client.pool(o) for name, o in self._origins.items()}
        self._metrics.watch_pools(self._pools)

    def end_streams(self) -> None:
        """Ends every open event stream, and answers new ones 503 from now on.

        Called as soon as the process is asked to stop: each client gets a
        complete response and reconnects (with ``Last-Event-ID``) to another
        replica, instead of being held until the graceful shutdown gives up.
        """
        self._ending = True
        for response in list(self._streams):
            response.close()

    async def close(self) -> None:
        self.end_streams()
        if self._client is not None:
            self._client.close()
            self._client = None

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
        if route.stream:
            if self._ending:
                # This replica is stopping: the client reconnects to another one.
                await send_error(
                    send,
                    ErrorCode.UPSTREAM_UNAVAILABLE,
                    headers=[(b"retry-after", self._retry_after)],
                    close=framing.has_body,
                )
                return
            headers = identity_encoding(headers)
        limit = self._max_upload if route.upload else self._max_body
        length = framing.content_length
        if length is not None and length > limit:
            self._metrics.body_too_large.inc()
            await send_error(send, ErrorCode.PAYLOAD_TOO_LARGE, close=True)
            return
        body = RequestBody(receive, limit) if framing.has_body else None
        outgoing: OutgoingBody = None
        if body is not None:
            if length is not None and length <= SMALL_REQUEST_BYTES:
                try:
                    outgoing = await body.read_all()
                except (BodyTooLarge, ClientGone) as exc:
                    await self._fail(scope, receive, send, body, None, exc)
                    return
            else:
                outgoing = body.chunks()

        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        target = raw_path + b"?" + query if query else raw_path
        if not self._tracing:
            await self._exchange(
                scope, receive, send, route, target, headers, outgoing, body, length
            )
            return
        origin = self._pools[route.upstream].origin
        with upstream_span(method, route, origin, headers) as traced_headers:
            await self._exchange(
                scope, receive, send, route, target, traced_headers, outgoing, body, length
            )

    async def _exchange(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: Route,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        outgoing: OutgoingBody,
        body: RequestBody | None,
        length: int | None,
    ) -> None:
        """One exchange with the upstream: the request out, the answer relayed back."""
        method: str = scope["method"]
        upstream_metrics = self._metrics.for_upstream(route.upstream)
        started = time.perf_counter()
        try:
            response = await self.client.request(
                self._pools[route.upstream],
                method,
                target,
                headers,
                timeouts=self._timeouts_of(route),
                body=outgoing,
                content_length=length,
                retry_if_stale=body is None and method in _RETRYABLE_METHODS,
            )
        except UnsafeRequest:
            await send_error(send, ErrorCode.BAD_REQUEST, close=True)
            return
        except UpstreamTimeout as exc:
            self._trace_failure(exc)
            await self._fail(scope, receive, send, body, upstream_metrics.timeout, exc)
            return
        except UpstreamError as exc:
            self._trace_failure(exc)
            await self._fail(scope, receive, send, body, upstream_metrics.unavailable, exc)
            return
        upstream_metrics.latency.observe(time.perf_counter() - started)
        if self._tracing:
            record_answer(response.status)
        if route.stream:
            self._streams.add(response)
            if self._ending:
                response.close()  # its head came in after end_streams: it ends at once
        try:
            await self._relay(scope, receive, send, response, body, stream=route.stream)
        finally:
            self._streams.discard(response)
            response.release()

    def _trace_failure(self, exc: UpstreamError) -> None:
        if self._tracing:
            record_failure(exc)

    def _timeouts_of(self, route: Route) -> ExchangeTimeouts:
        if route.stream:
            return self._stream_timeouts
        return self._transfer_timeouts if route.transfer else self._timeouts

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
            headers=[(b"retry-after", self._retry_after)],
            close=unread_body,
        )

    async def _relay(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        response: UpstreamResponse,
        body: RequestBody | None,
        *,
        stream: bool = False,
    ) -> None:
        headers = downstream_response_headers(response.headers, self._locations)
        if stream:
            # The gateway's own word to a proxy in front, whatever the upstream said.
            headers = [h for h in headers if h[0] != b"x-accel-buffering"]
            headers.append(_NO_BUFFERING)
            if not any(name == b"cache-control" for name, _ in headers):
                headers.append(_NO_CACHE)
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
            except UpstreamError as exc:
                await self._fail(scope, receive, send, body, None, exc)
                return
            await send(start)
            await send({"type": "http.response.body", "body": content})
            return
        await send(start)
        await self._stream(
            receive, send, response, watch_disconnect=body is None or body.done, stream=stream
        )

    async def _stream(
        self,
        receive: Receive,
        send: Send,
        response: UpstreamResponse,
        *,
        watch_disconnect: bool,
        stream: bool = False,
    ) -> None:
        # uvicorn drops writes to a closed connection silently, so only a
        # http.disconnect tells us the client left; without it a 40 MB download
        # to a client that went away would still be read to the end.
        watcher: asyncio.Task[None] | None = None
        if watch_disconnect:
            watcher = asyncio.create_task(_close_on_disconnect(receive, response))
        try:
            while chunk := await response.next_chunk():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except UpstreamError as exc:
            if stream and self._ending:
                # Ended by end_streams: an event stream has no length to fall
                # short of, so it ends complete and the client reconnects.
                await send({"type": "http.response.body", "body": b""})
                return
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


async def _close_on_disconnect(receive: Receive, response: UpstreamResponse) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            response.close()
            return
