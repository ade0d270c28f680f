"""The client's request body as a bounded stream towards the upstream.

The body is never held whole: each ASGI chunk is handed to the upstream
connection as it arrives (uvicorn pauses reading the socket while we are
behind, so memory stays at a few chunks). The running total is checked on
every chunk, which catches a chunked body, or a client sending more than its
Content-Length, the moment it crosses the limit; raising then aborts the
upstream request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.types import Receive

# After refusing a body mid-stream, read on this much (this long) before answering.
# Closing a socket with unread data makes the kernel send a reset, which can
# destroy the 413 before the client reads it (nginx's lingering close, bounded).
LINGER_BYTES = 1024 * 1024
LINGER_SECONDS = 0.5


class BodyTooLarge(Exception):
    """The streamed body crossed the limit."""


class ClientGone(Exception):
    """The client disconnected while sending its body."""


class RequestBody:
    """One request's body, readable once, with what went wrong if anything did."""

    __slots__ = ("_limit", "_receive", "client_gone", "done", "received", "too_large")

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self._limit = limit
        self.received = 0
        self.done = False
        self.too_large = False
        self.client_gone = False

    async def chunks(self) -> AsyncIterator[bytes]:
        while not self.done:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.client_gone = True
                raise ClientGone
            chunk: bytes = message.get("body", b"")
            self.received += len(chunk)
            if self.received > self._limit:
                self.too_large = True
                raise BodyTooLarge
            if not message.get("more_body", False):
                self.done = True
            if chunk:
                yield chunk

    async def read_all(self) -> bytes:
        """The whole body, for one whose declared length is small (it is still counted)."""
        return b"".join([chunk async for chunk in self.chunks()])

    async def linger(self) -> None:
        """Reads and drops what the client is still sending, within bounds."""
        dropped = 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LINGER_SECONDS):
                while dropped < LINGER_BYTES:
                    message = await self._receive()
                    if message["type"] == "http.disconnect":
                        return
                    dropped += len(message.get("body", b""))
                    if not message.get("more_body", False):
                        return
