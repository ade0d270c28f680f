"""The upstream client: one exchange (request out, response head back) over a pooled connection.

Request bodies come in three forms: none; ``bytes`` (small, already read),
sent with the head in one write; or an async iterator, streamed by a task of
its own while the response is awaited, because an upstream may answer before
it has read the whole body. A bodyless idempotent request that meets a pooled
connection the upstream closed under it, before any byte of an answer, is
retried once; nothing else is ever retried, since the upstream may have acted.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

from gateway_service.proxy.connection import UpstreamConnection
from gateway_service.proxy.errors import (
    RequestBodyError,
    UpstreamDisconnected,
    UpstreamError,
    UpstreamProtocolError,
)
from gateway_service.proxy.pool import ConnectionBudget, ConnectionPool, Origin
from gateway_service.proxy.response import UpstreamResponse

OutgoingBody = bytes | AsyncIterator[bytes] | None

# A document fetched with :meth:`UpstreamClient.fetch` (OpenAPI, JWKS) is held whole.
MAX_FETCHED_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ExchangeTimeouts:
    total: float
    """Budget of the whole exchange, body included (seconds)."""
    idle_read: float | None = None
    """Longest silence of the upstream once the request is sent (None: only ``total``)."""
    until_head: bool = False
    """Both budgets bound only the wait for the response head; once it is in, the
    body may run as long as the upstream keeps the connection open (event streams).
    The connect timeout applies as always."""


_UNSAFE_TARGET = re.compile(rb"[\x00-\x20\x7f]")


class UnsafeRequest(ValueError):
    """The request head would not be one well-formed HTTP/1.1 head (CR, LF or NUL inside)."""


def encode_head(
    method: str,
    target: bytes,
    host: bytes,
    headers: list[tuple[bytes, bytes]],
    framing: bytes,
) -> bytes:
    """The request line and headers; refuses any CR, LF or NUL that would split them."""
    if _UNSAFE_TARGET.search(target):
        # A space or control byte would end the request target early.
        raise UnsafeRequest("request target contains a space or a control character")
    parts = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\nhost: ", host, b"\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts += (framing, b"\r\n")
    head = b"".join(parts)
    # Every line break must be one of ours: one per header, the request line,
    # host, the framing line and the blank line. A CR, LF or NUL smuggled into
    # the target or a value would start a header or a request of the client's
    # choosing upstream.
    lines = len(headers) + (4 if framing else 3)
    if head.count(b"\n") != lines or head.count(b"\r") != lines or b"\x00" in head:
        raise UnsafeRequest("request head contains CR, LF or NUL")
    return head


def _framing(body: OutgoingBody, content_length: int | None) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return b"content-length: %d\r\n" % len(body)
    if content_length is not None:
        return b"content-length: %d\r\n" % content_length
    return b"transfer-encoding: chunked\r\n"


class UpstreamClient:
    """Pools per origin under one budget, and the exchanges that use them."""

    def __init__(
        self,
        *,
        pool_size: int,
        pool_per_host: int,
        connect_timeout: float,
        keepalive_seconds: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._budget = ConnectionBudget(pool_size)
        self._per_host = pool_per_host
        self._connect_timeout = connect_timeout
        self._keepalive = keepalive_seconds
        self._ssl = ssl_context
        self._pools: dict[tuple[str, str, int], ConnectionPool] = {}

    def pool(self, origin: Origin) -> ConnectionPool:
        """The pool of ``origin`` (made on first use; must run on the event loop)."""
        pool = self._pools.get(origin.key)
        if pool is None:
            if origin.scheme == "https" and self._ssl is None:
                self._ssl = ssl.create_default_context()
            pool = self._pools[origin.key] = ConnectionPool(
                origin,
                self._budget,
                limit=self._per_host,
                connect_timeout=self._connect_timeout,
                keepalive_seconds=self._keepalive,
                ssl_context=self._ssl,
            )
        return pool

    async def request(
        self,
        pool: ConnectionPool,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        *,
        timeouts: ExchangeTimeouts,
        body: OutgoingBody = None,
        content_length: int | None = None,
        retry_if_stale: bool = False,
    ) -> UpstreamResponse:
        """Sends the request and returns once the response head is in.

        ``target`` is the path and query as sent (the pool's path prefix is
        added here); ``content_length`` frames a streamed body (None: chunked).
        The caller must :meth:`~UpstreamResponse.release` the response.
        """
        loop = pool.loop
        deadline = loop.time() + timeouts.total
        head = encode_head(
            method,
            pool.origin.path_prefix + target,
            pool.host_header,
            headers,
            _framing(body, content_length),
        )
        attempts = 2 if retry_if_stale and body is None else 1
        for attempt in range(attempts):
            conn = await pool.acquire(deadline)
            reused = conn.exchanges > 0
            response = conn.start_exchange(
                head_only=method == "HEAD",
                deadline=deadline,
                idle_read=timeouts.idle_read,
                until_head=timeouts.until_head,
            )
            try:
                if isinstance(body, bytes) or body is None:
                    conn.write(head + body if body else head)
                    conn.request_sent()
                else:
                    conn.write(head)
                    response.writer = loop.create_task(_send_body(conn, body, content_length))
                await response.wait_head()
            except UpstreamDisconnected as exc:
                response.release()
                if reused and not exc.response_started and attempt + 1 < attempts:
                    continue  # the upstream had closed this pooled socket: a fresh one
                raise
            except BaseException:
                response.close()
                response.release()
                raise
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def fetch(self, url: str, *, timeout_seconds: float) -> tuple[int, bytes]:
        """GETs a small document (status, body): the OpenAPI merge and readiness use it."""
        origin_url = _origin_of(url)
        target = url[len(origin_url) :] or "/"
        origin = Origin.parse(origin_url)
        response = await self.request(
            self.pool(origin),
            "GET",
            target.encode("ascii"),
            [(b"accept", b"application/json"), (b"accept-encoding", b"identity")],
            timeouts=ExchangeTimeouts(timeout_seconds),
            retry_if_stale=True,
        )
        try:
            body = bytearray()
            while chunk := await response.next_chunk():
                body += chunk
                if len(body) > MAX_FETCHED_BYTES:
                    raise UpstreamProtocolError(f"{url} is larger than {MAX_FETCHED_BYTES} bytes")
            return response.status, bytes(body)
        finally:
            response.release()

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()

    def stats(self, origin: Origin) -> tuple[int, int]:
        """(idle, in use) connections of ``origin``'s pool."""
        pool = self._pools.get(origin.key)
        return (pool.idle, pool.in_use) if pool is not None else (0, 0)


def _origin_of(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.split("/", 1)[0]


async def _send_body(
    conn: UpstreamConnection, chunks: AsyncIterator[bytes], content_length: int | None
) -> None:
    """Streams the body; any failure fails the exchange (never raises, but when cancelled)."""
    sent = 0
    try:
        async for chunk in chunks:
            if not chunk:
                continue
            sent += len(chunk)
            if content_length is None:
                conn.write(b"%x\r\n" % len(chunk))
                conn.write(chunk)
                conn.write(b"\r\n")
            elif sent > content_length:
                raise RequestBodyError(f"body longer than its Content-Length {content_length}")
            else:
                conn.write(chunk)
            await conn.drain()
        if content_length is None:
            conn.write(b"0\r\n\r\n")
        elif sent != content_length:
            raise RequestBodyError(f"body of {sent} bytes, Content-Length {content_length}")
        conn.request_sent()
    except UpstreamDisconnected:
        pass  # the connection broke: the response side reports it
    except UpstreamError as exc:
        conn.abort(exc)
    except Exception as exc:
        error = RequestBodyError(f"request body failed: {type(exc).__name__}")
        error.__cause__ = exc
        conn.abort(error)
