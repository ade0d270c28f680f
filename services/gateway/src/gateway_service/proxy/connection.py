"""One keep-alive HTTP/1.1 connection to an upstream.

This is the gateway's own upstream client (ADR 0008): aiohttp's client cost
~130 us of CPU per proxied request here, a third of the gateway's total, which
kept the gateway under its throughput target; this one costs ~30-50 us,
because it does only what a reverse proxy needs. One exchange at a time per
connection (no pipelining), headers passed through as bytes, no cookies, no
redirects, no decompression. The HTTP grammar is not ours: responses are parsed by httptools
(llhttp, the parser of Node.js and of uvicorn).

Every way an exchange can fail ends in one ``UpstreamError`` subclass
(:mod:`gateway_service.proxy.errors`) and a closed connection; a connection is
only ever reused after a complete, keep-alive response to a completely sent
request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final, cast

import httptools

from gateway_service.proxy.errors import (
    UpstreamDisconnected,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from gateway_service.proxy.response import READ_HIGH_WATER, UpstreamResponse

_NO_BODY_STATUSES: Final = frozenset({204, 304})
_TIMER_SLACK: Final = 0.002


class _UnexpectedMessage(Exception):
    """Raised in a parser callback to stop parsing bytes nobody asked for."""


class UpstreamConnection(asyncio.Protocol):
    """An asyncio protocol carrying one exchange at a time.

    ``on_closed`` is called exactly once, when the socket is gone, so the pool
    can account for it; ``on_finished`` when an exchange ends (with whether
    the connection may serve another one).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_finished: Callable[[UpstreamConnection, bool], None],
        on_closed: Callable[[UpstreamConnection], None],
    ) -> None:
        self.loop = loop
        self._on_finished = on_finished
        self._on_closed = on_closed
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self.closed = False
        """The socket is gone (connection_lost ran)."""
        self.broken = False
        """Closing or aborted: never to be used again, even if the socket is not gone yet."""
        self.exchanges = 0
        """How many exchanges this connection has started (1 means it is fresh)."""
        self.idle_since = 0.0
        self._response: UpstreamResponse | None = None
        self._header_list: list[tuple[bytes, bytes]] = []
        self._informational = False
        self._chunked = False
        self._keep_alive = True
        self._request_sent = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._deadline = 0.0
        self._idle_read: float | None = None
        self._last_read = 0.0
        self._until_head = False
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        response = self._response
        if response is None or response.body_complete:
            # Bytes nobody asked for (a late 408, garbage): the connection's
            # framing can no longer be trusted.
            self.abort(UpstreamProtocolError("unsolicited data from the upstream"))
            return
        self._last_read = self.loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.abort(UpstreamProtocolError("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            self.abort(UpstreamProtocolError(f"malformed response: {exc}"))

    def eof_received(self) -> bool | None:
        return None  # let the transport close; connection_lost does the rest

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = self.broken = True
        self._cancel_timer()
        response = self._response
        if response is not None and not response.body_complete:
            if response.head_received and response.close_delimited and exc is None:
                response._complete()  # the body ran until the upstream closed: all of it
            else:
                detail = f"connection lost: {exc!r}" if exc else "connection closed by upstream"
                response._fail(
                    UpstreamDisconnected(detail, response_started=response.head_received)
                )
        self._wake_drain()
        self._on_closed(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain()

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        response = self._response
        if response is None or response.body_complete:
            # A second answer after the complete one (in the same read): the
            # upstream's framing disagrees with ours. Raising stops the parser.
            raise _UnexpectedMessage

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_list.append((name, value))

    def on_headers_complete(self) -> None:
        response = self._response
        assert response is not None
        status = self._parser.get_status_code()
        headers, self._header_list = self._header_list, []
        if status < 200:
            # 1xx (e.g. 103 Early Hints): not the answer; llhttp goes on to the next head.
            self._informational = True
            return
        for name, value in headers:
            if len(name) == 14 and name.lower() == b"content-length":
                response.content_length = int(value) if value.isdigit() else None
            elif len(name) == 17 and name.lower() == b"transfer-encoding":
                self._chunked = True
        if (
            response.content_length is None
            and not self._chunked
            and not response.head_only
            and status not in _NO_BODY_STATUSES
        ):
            response.close_delimited = True
        if self._until_head:
            self._cancel_timer()  # the budgets were for the head only
        response._head_complete(status, headers)
        if response.head_only:
            # llhttp would wait for the Content-Length bytes a HEAD answer never has,
            # so this connection's parser is done: finish here, never reuse it.
            self._complete_message(keep_alive=False)

    def on_body(self, body: bytes) -> None:
        response = self._response
        assert response is not None
        if response.body_complete:
            raise _UnexpectedMessage  # body bytes after a HEAD answer's head
        if response._feed(body) > READ_HIGH_WATER and not self._reading_paused:
            assert self._transport is not None
            self._reading_paused = True
            self._transport.pause_reading()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        response = self._response
        if response is not None and not response.body_complete:
            self._complete_message(keep_alive=self._parser.should_keep_alive())

    # -- used by the pool and the client

    def start_exchange(
        self,
        *,
        head_only: bool,
        deadline: float,
        idle_read: float | None,
        until_head: bool = False,
    ) -> UpstreamResponse:
        """A new exchange, failing with :class:`UpstreamTimeout` at ``deadline`` (loop time).

        With ``until_head`` the timer stops once the response head is in: the body
        is then bounded by nothing but the upstream (and whoever closes the response).
        """
        self.exchanges += 1
        self._until_head = until_head
        self._chunked = False
        self._keep_alive = True
        self._request_sent = False
        self._informational = False
        self._deadline = deadline
        self._idle_read = idle_read
        now = self._last_read = self.loop.time()
        response = self._response = UpstreamResponse(self, head_only=head_only)
        wake = deadline if idle_read is None else min(deadline, now + idle_read)
        self._timer = self.loop.call_at(wake, self._on_timer)
        return response

    def write(self, data: bytes) -> None:
        if self.broken or self._transport is None:
            raise UpstreamDisconnected("connection closed", response_started=False)
        self._transport.write(data)

    async def drain(self) -> None:
        """Waits while the socket's send buffer is full (the upstream reads slowly)."""
        while self._write_paused and not self.broken:
            self._drain_waiter = self.loop.create_future()
            await self._drain_waiter
        if self.broken:
            raise UpstreamDisconnected("connection closed while sending", response_started=False)

    def request_sent(self) -> None:
        """The whole request is written; silence is measured from here on."""
        self._request_sent = True
        self._last_read = self.loop.time()

    def resume_reading(self) -> None:
        if self._reading_paused and not self.broken and self._transport is not None:
            self._reading_paused = False
            self._last_read = self.loop.time()
            self._transport.resume_reading()

    def abort(self, error: UpstreamError) -> None:
        """Fails the exchange in progress (if any) with ``error`` and drops the socket."""
        if self._response is not None:
            self._response._fail(error)
        self._cancel_timer()
        if self._transport is not None and not self.broken:
            self._transport.abort()
        self.broken = True
        self._wake_drain()

    def close(self) -> None:
        """Closes an idle connection."""
        if self._transport is not None and not self.broken:
            self._transport.close()
        self.broken = True

    def finish_exchange(self, response: UpstreamResponse) -> None:
        if response is not self._response:
            return
        if response.writer is not None and not response.writer.done():
            response.writer.cancel()  # answered before the whole body was sent
        reusable = (
            response.body_complete
            and response._error is None
            and self._request_sent
            and self._keep_alive
            and not self.broken
        )
        self._response = None
        self._cancel_timer()
        if not reusable:
            self.abort(UpstreamDisconnected("exchange abandoned", response_started=True))
        self._on_finished(self, reusable)

    # -- internals

    def _complete_message(self, *, keep_alive: bool) -> None:
        response = self._response
        assert response is not None
        self._keep_alive = keep_alive
        self._cancel_timer()
        response._complete()

    def _on_timer(self) -> None:
        self._timer = None
        now = self.loop.time()
        # uvloop's timers have millisecond resolution and may fire a hair early.
        if now >= self._deadline - _TIMER_SLACK:
            self.abort(UpstreamTimeout("the upstream exceeded the request's time budget"))
            return
        idle = self._idle_read
        if idle is not None and self._request_sent and not self._reading_paused:
            if now - self._last_read >= idle - _TIMER_SLACK:
                self.abort(UpstreamTimeout(f"the upstream sent nothing for {idle:g} s"))
                return
            wake = min(self._deadline, self._last_read + idle)
            self._timer = self.loop.call_at(wake, self._on_timer)
            return
        wake = self._deadline if idle is None else min(self._deadline, now + idle)
        self._timer = self.loop.call_at(wake, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _wake_drain(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._drain_waiter = None
