"""The HTTP/1.1 protocol every service and the gateway serve: uvicorn's, with head limits.

uvicorn's httptools protocol sets no limit on a request's head, and httptools
hands a header to Python only once it is complete, joining its pieces with
``bytes +=`` until then: one 128 MiB header was held, and copied over and
over, before anything could look at it (issue 8; ADR 0012). This subclass
keeps uvicorn's request handling and adds, while the head is parsed:

* the request-target is counted as httptools hands it over, piece by piece as
  it arrives: past ``max_url_bytes`` the answer is ``414 URI_TOO_LONG``;
* every complete header is checked: larger than ``max_header_bytes``, past
  ``max_header_total_bytes`` in all, or more than ``max_header_count`` fields:
  ``431 HEADER_FIELDS_TOO_LARGE``;
* httptools is never fed more of one head than those limits allow together
  (:attr:`HttpLimits.max_head_bytes`), so a header that never ends is refused
  (431) after that many bytes, whatever its length: memory and copying stay
  bounded by the limits, not by what a client sends;
* what httptools refuses (a bad request line, a byte not allowed in a header,
  broken chunked framing...) is ``400 BAD_REQUEST``.

Each refusal is the error envelope (JSON, ``X-Request-ID``, ``nosniff``) with
``Connection: close``, never uvicorn's plain-text "Invalid HTTP request
received.". The connection is then half-closed and what the client still sends
is read and dropped for a moment (bounded in time and bytes) before it is
closed, as nginx's lingering close does: closing a socket with unread data
makes the kernel reset the connection, which can destroy the answer before the
client has read it (RFC 9112, section 9.6).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from service_kit.context import REQUEST_ID_HEADER, sane_request_id
from service_kit.errors import CATALOG, ErrorCode, error_body

if TYPE_CHECKING:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from service_kit.settings import KitSettings

log = logging.getLogger("service_kit.http")

# A head carries more than its URL, names and values: the method and version of
# the request line, and ": " and CRLF on each header line (a little optional
# whitespace too). What a well-formed head at every limit needs, plus a margin.
_REQUEST_LINE_FRAMING = 1024
_HEADER_LINE_FRAMING = 8

# After a refusal: what is still read and dropped before the connection closes.
LINGER_SECONDS = 1.0
LINGER_BYTES = 1024 * 1024

_REQUEST_ID = REQUEST_ID_HEADER.encode()
_NOT_HTTP = "The request is not valid HTTP/1.1."


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What one request head may hold (``HTTP_MAX_*`` in :class:`KitSettings`)."""

    max_url_bytes: int
    max_header_bytes: int
    """One header's name and value together."""
    max_header_total_bytes: int
    max_header_count: int

    @classmethod
    def from_settings(cls, settings: KitSettings) -> HttpLimits:
        return cls(
            max_url_bytes=settings.http_max_url_bytes,
            max_header_bytes=settings.http_max_header_bytes,
            max_header_total_bytes=settings.http_max_header_total_bytes,
            max_header_count=settings.http_max_header_count,
        )

    @property
    def max_head_bytes(self) -> int:
        """The most bytes of one request head read before it is refused unfinished."""
        return (
            self.max_url_bytes
            + self.max_header_total_bytes
            + _HEADER_LINE_FRAMING * self.max_header_count
            + _REQUEST_LINE_FRAMING
        )


class _Refused(Exception):
    """Raised in a parser callback to stop httptools; the reason is on the protocol."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with :class:`HttpLimits` and refusals in the envelope.

    uvicorn builds one per connection; :func:`service_kit.serve.serve` hands it
    over as ``partial(LimitedHttpToolsProtocol, limits=...)``.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: HttpLimits,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self._max_head_bytes = limits.max_head_bytes
        # Between requests the next bytes are a head; from the end of a head to
        # the end of its message they are the body.
        self._in_head = True
        self._head_bytes = 0
        self._header_count = 0
        self._header_bytes = 0
        self._refusal: tuple[ErrorCode, str | None] | None = None
        self._dropping = False
        self._dropped = 0
        self._linger_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        if self._dropping:
            self._dropped += len(data)
            if self._dropped > LINGER_BYTES:
                self.transport.close()
            return
        self._unset_keepalive_if_required()
        view = memoryview(data)
        while view:
            if self._in_head:
                room = self._max_head_bytes - self._head_bytes
                if room <= 0:
                    # The head outgrew the limits together with a header still unfinished.
                    self._refuse(ErrorCode.HEADER_FIELDS_TOO_LARGE, self._total_message())
                    return
                # A head that ends in this piece makes the rest of it body or the
                # next request: httptools parses on, and the loop sees the new state.
                piece, view = view[:room], view[room:]
                self._head_bytes += len(piece)
            else:
                piece, view = view, view[len(view) :]
            try:
                self.parser.feed_data(piece)
            except httptools.HttpParserUpgrade:
                # As uvicorn: a WebSocket handshake goes to the WebSocket protocol
                # (none is configured by serve(): the request is answered as HTTP).
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                return
            except httptools.HttpParserError:
                code, message = self._refusal or (ErrorCode.BAD_REQUEST, _NOT_HTTP)
                self._refuse(code, message)
                return

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        super().connection_lost(exc)

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0
        self._header_bytes = 0

    def on_url(self, url: bytes) -> None:
        if len(self.url) + len(url) > self.limits.max_url_bytes:
            self._stop(
                ErrorCode.URI_TOO_LONG,
                f"The URL (path and query) may be at most {self.limits.max_url_bytes} bytes.",
            )
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value)
        self._header_count += 1
        self._header_bytes += size
        limits = self.limits
        if self._header_count > limits.max_header_count:
            self._stop(
                ErrorCode.HEADER_FIELDS_TOO_LARGE,
                f"A request may have at most {limits.max_header_count} header fields.",
            )
        if size > limits.max_header_bytes:
            self._stop(
                ErrorCode.HEADER_FIELDS_TOO_LARGE,
                f"A header (name and value) may be at most {limits.max_header_bytes} bytes.",
            )
        if self._header_bytes > limits.max_header_total_bytes:
            self._stop(ErrorCode.HEADER_FIELDS_TOO_LARGE, self._total_message())
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        super().on_message_complete()

    # -- refusals

    def _stop(self, code: ErrorCode, message: str) -> NoReturn:
        self._refusal = (code, message)
        raise _Refused(message)

    def _total_message(self) -> str:
        return f"The headers may be at most {self.limits.max_header_total_bytes} bytes in all."

    def _refuse(self, code: ErrorCode, message: str | None) -> None:
        status = CATALOG[code].status
        log.warning(
            "request refused while parsing: %s",
            message or CATALOG[code].message,
            extra={"status": status, "code": code.value, "client": self.client},
        )
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if self._in_head:
                # The bad head is a pipelined request behind one not answered yet:
                # an answer now would overtake that one's. That one is answered,
                # then the connection closes; what follows is dropped.
                cycle.keep_alive = False
                self._dropping = True
                return
            if cycle.response_started:
                # The request being answered broke its own framing (a bad chunk,
                # say) after its answer began: nothing more can be said on it.
                self.transport.close()
                return
            # Its answer has not begun: the app is told the client left (its
            # writes are dropped from now on) and the refusal is the answer.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.write(self._refusal_bytes(status, code, message))
        self._linger()

    def _refusal_bytes(self, status: int, code: ErrorCode, message: str | None) -> bytes:
        request_id = sane_request_id(self._callers_request_id())
        body = orjson.dumps(error_body(code, request_id, message))
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: %d\r\n" % len(body),
                b"x-request-id: " + request_id.encode() + b"\r\n",
                b"x-content-type-options: nosniff\r\n",
                b"connection: close\r\n\r\n",
                body,
            ]
        )
        return b"".join(content)

    def _callers_request_id(self) -> str | None:
        for name, value in self.headers or ():
            if name == _REQUEST_ID:
                return value.decode("latin-1")
        return None

    def _linger(self) -> None:
        self._dropping = True
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._linger_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)
