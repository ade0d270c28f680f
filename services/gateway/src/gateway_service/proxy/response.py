"""The response of one upstream exchange, as the proxy reads it.

Status and headers arrive first (:meth:`UpstreamResponse.wait_head`), then the
body, whole (:meth:`read`, for small ones) or piece by piece
(:meth:`next_chunk`); :meth:`release` ends the exchange. The connection feeds
it through the underscore methods, from its parser callbacks.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final, Protocol

from gateway_service.proxy.errors import UpstreamDisconnected, UpstreamError


class ExchangeConnection(Protocol):
    """What a response needs of the connection that feeds it.

    A protocol rather than the connection class: the connection imports this
    module, and a response must not import it back (an import cycle).
    """

    loop: asyncio.AbstractEventLoop

    def resume_reading(self) -> None: ...

    def abort(self, error: UpstreamError) -> None: ...

    def finish_exchange(self, response: UpstreamResponse) -> None: ...


# Read-side backpressure: past HIGH buffered bytes the socket is not read until
# the consumer has taken the buffer under LOW, so a slow client never makes the
# gateway hold a fast upstream's whole response in memory.
READ_HIGH_WATER: Final = 256 * 1024
READ_LOW_WATER: Final = 64 * 1024


class UpstreamResponse:
    """The response of one exchange: status and headers first, then the body.

    ``headers`` are the raw (name, value) pairs as the upstream sent them.
    The body is read with :meth:`read` (all of it, for small bodies) or
    :meth:`next_chunk`; :meth:`release` must always be called at the end and
    hands the connection back to its pool when it can be reused.
    """

    __slots__ = (
        "_body_waiter",
        "_buffered",
        "_chunks",
        "_connection",
        "_error",
        "_head_waiter",
        "body_complete",
        "close_delimited",
        "content_length",
        "head_only",
        "head_received",
        "headers",
        "released",
        "status",
        "writer",
    )

    def __init__(self, connection: ExchangeConnection, *, head_only: bool) -> None:
        self._connection = connection
        self.head_only = head_only
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.content_length: int | None = None
        self.close_delimited = False
        self.head_received = False
        self.body_complete = False
        self.released = False
        self._error: UpstreamError | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._head_waiter: asyncio.Future[None] | None = None
        self._body_waiter: asyncio.Future[None] | None = None
        self.writer: asyncio.Task[None] | None = None
        """The task streaming the request body, while it runs."""

    # -- read by the caller

    async def wait_head(self) -> None:
        """Returns once status and headers are in; raises the exchange's error."""
        while not self.head_received:
            if self._error is not None:
                raise self._error
            self._head_waiter = self._connection.loop.create_future()
            await self._head_waiter

    async def next_chunk(self) -> bytes:
        """The next piece of the body, or ``b""`` once the body is complete."""
        while not self._chunks:
            if self.body_complete:
                return b""
            if self._error is not None:
                raise self._error
            self._body_waiter = self._connection.loop.create_future()
            await self._body_waiter
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._buffered < READ_LOW_WATER:
            self._connection.resume_reading()
        return chunk

    async def read(self) -> bytes:
        """The whole body (only for bodies known to be small)."""
        while not self.body_complete:
            if self._error is not None:
                raise self._error
            self._body_waiter = self._connection.loop.create_future()
            await self._body_waiter
        body = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        return body

    def close(self) -> None:
        """Abandons the exchange: the connection is closed, a waiting reader is woken."""
        if not self.released:  # once released, the connection may carry another exchange
            self._connection.abort(
                UpstreamDisconnected("closed by the gateway", response_started=True)
            )

    def release(self) -> None:
        """Ends the exchange; the connection goes back to its pool only if reusable."""
        if not self.released:
            self.released = True
            self._connection.finish_exchange(self)

    # -- fed by the connection

    def _wake(self, waiter: asyncio.Future[None] | None) -> None:
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _head_complete(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        self.headers = headers
        self.head_received = True
        self._wake(self._head_waiter)

    def _feed(self, chunk: bytes) -> int:
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        self._wake(self._body_waiter)
        return self._buffered

    def _complete(self) -> None:
        self.body_complete = True
        self._wake(self._body_waiter)

    def _fail(self, error: UpstreamError) -> None:
        if self._error is None and not self.body_complete:
            self._error = error
        self._wake(self._head_waiter)
        self._wake(self._body_waiter)
