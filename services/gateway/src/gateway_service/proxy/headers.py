"""Which headers cross the gateway, in each direction (RFC 9110 section 7.6.1).

Request: hop-by-hop headers (and any a ``Connection`` header names) stop here;
identity headers a client could use to impersonate someone or spoof its
address are dropped; the gateway then sets ``X-Forwarded-For`` (the peer it
saw, replacing any value sent), ``X-Forwarded-Proto`` and ``X-Request-ID``.
Everything else, ``Authorization`` included, reaches the upstream unchanged:
services verify the token again.

Response: hop-by-hop headers stop here; an upstream's ``Server`` is dropped
(the gateway sends none either) and ``Date`` is the gateway's own; upstream
``Access-Control-*`` headers are dropped so CORS has one authority (the
gateway's CORS layer); a ``Location`` or ``Content-Location`` that names an
upstream is made a path of the gateway's, or dropped (:class:`UpstreamLocations`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from gateway_service.proxy.pool import Origin

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

# Dropped from requests besides hop-by-hop ones. ``host`` is the upstream's own,
# ``expect`` is answered by the gateway's server, ``content-length`` is re-sent
# by the client after it is validated, ``x-request-id`` is replaced by the sane one.
_REQUEST_DROP = HOP_BY_HOP | {
    b"host",
    b"expect",
    b"content-length",
    b"x-request-id",
    b"forwarded",
    b"x-real-ip",
    b"true-client-ip",
    b"x-cluster-client-ip",
    b"x-original-url",
    b"x-rewrite-url",
    b"x-http-method-override",
}
# Identity and address headers only the platform itself may set.
IDENTITY_PREFIXES = (b"x-user", b"x-auth", b"x-forwarded", b"x-client", b"x-internal")

_RESPONSE_DROP = HOP_BY_HOP | {b"server", b"date", b"x-request-id"}
_ACCESS_CONTROL = b"access-control-"
_LOCATIONS = frozenset({b"location", b"content-location"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(slots=True)
class RequestFraming:
    """How the client framed its body: a declared length, chunked, or none."""

    content_length: int | None = None
    chunked: bool = False
    invalid: bool = False

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)


def _tokens(value: bytes) -> set[bytes]:
    return {t.strip().lower() for t in value.split(b",") if t.strip()}


def upstream_request_headers(
    raw: list[tuple[bytes, bytes]], client_ip: str, scheme: str, request_id: str
) -> tuple[list[tuple[bytes, bytes]], RequestFraming]:
    """The headers to send upstream (names lower-case, as the ASGI server gives them),
    and how the request body is framed; the client adds the framing header itself."""
    framing = RequestFraming()
    nominated: set[bytes] | None = None
    headers: list[tuple[bytes, bytes]] = []
    for name, value in raw:
        if name in _REQUEST_DROP:
            if name == b"content-length":
                if not value.isdigit() or (
                    framing.content_length is not None and framing.content_length != int(value)
                ):
                    framing.invalid = True
                else:
                    framing.content_length = int(value)
            elif name == b"transfer-encoding":
                framing.chunked = True
            elif name == b"connection":
                nominated = (nominated or set()) | _tokens(value)
            continue
        if name.startswith(IDENTITY_PREFIXES):
            continue
        headers.append((name, value))
    if nominated:
        headers = [(n, v) for n, v in headers if n not in nominated]
    headers.append((b"x-forwarded-for", client_ip.encode("latin-1")))
    headers.append((b"x-forwarded-proto", scheme.encode("latin-1")))
    headers.append((b"x-request-id", request_id.encode("latin-1")))
    if framing.chunked:
        # Transfer-Encoding wins over Content-Length (RFC 9112 6.3); the body is
        # re-framed as chunked towards the upstream.
        framing.content_length = None
    return headers, framing


def identity_encoding(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` asking for an uncompressed answer: an event stream must reach the
    client chunk by chunk, and a compressor may hold chunks back to fill a block."""
    out = [(name, value) for name, value in headers if name != b"accept-encoding"]
    out.append((b"accept-encoding", b"identity"))
    return out


class UpstreamLocations:
    """Keeps upstream addresses out of the ``Location`` headers the client gets.

    An upstream builds an absolute URL from the Host the gateway sent it (a
    slash redirect of FastAPI did: ``307 Location: http://127.0.0.1:8001/api/v1/users``,
    issue 8). Such a URL is rewritten to a path, not dropped: the gateway
    routes public paths to its upstreams unchanged (after the base URL's path
    prefix), so the upstream's path is the public one, and a relative reference
    (RFC 9110, section 10.2.2) keeps a 201's or 202's ``Location`` usable while
    naming no internal host. A URL on an upstream's host that no path of the
    gateway matches (another port, outside the prefix) or that cannot be
    parsed is dropped: it can only point inside. Any other URL is passed on.
    """

    __slots__ = ("_hosts", "_prefixes")

    def __init__(self, origins: Iterable[Origin]) -> None:
        self._prefixes: dict[tuple[str, int], str] = {}
        for origin in origins:
            key = (origin.host.lower(), origin.port)
            self._prefixes[key] = origin.path_prefix.decode("ascii")
        self._hosts = frozenset(host for host, _ in self._prefixes)

    def public(self, value: bytes) -> bytes | None:
        """``value`` as the client may see it: unchanged, made a path, or None (drop it)."""
        # Backslashes count as slashes and surrounding blanks are ignored, as a
        # browser reads a URL: "http:\\host" must not slip past as a relative path.
        text = value.decode("latin-1").strip(" \t\r\n").replace("\\", "/")
        try:
            parts = urlsplit(text)
            host = parts.hostname
            port = parts.port
        except ValueError:
            return None
        if not parts.netloc:
            return value
        if host not in self._hosts:
            return value
        if port is None:
            port = _DEFAULT_PORTS.get(parts.scheme or "http")
        prefix = self._prefixes.get((host, port or 0))
        if prefix is None:
            return None
        path = parts.path
        if prefix:
            if path != prefix and not path.startswith(prefix + "/"):
                return None
            path = path[len(prefix) :]
        # One leading slash: "//other.host/x" would be read as another host.
        public = "/" + path.lstrip("/")
        if parts.query:
            public += "?" + parts.query
        if parts.fragment:
            public += "#" + parts.fragment
        return public.encode("latin-1")


def downstream_response_headers(
    raw: Iterable[tuple[bytes, bytes]], locations: UpstreamLocations
) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers that the client gets (names lower-cased)."""
    nominated: set[bytes] | None = None
    out: list[tuple[bytes, bytes]] = []
    for name, value in raw:
        lname = name.lower()
        if lname in _RESPONSE_DROP:
            if lname == b"connection":
                nominated = (nominated or set()) | _tokens(value)
            continue
        if lname.startswith(_ACCESS_CONTROL):
            continue
        if lname in _LOCATIONS:
            public = locations.public(value)
            if public is None:
                continue
            value = public
        out.append((lname, value))
    if nominated:
        out = [(n, v) for n, v in out if n not in nominated]
    return out
