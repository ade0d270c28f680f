"""The public routing table: which upstream serves a path, and what the path may look like.

Routing is by path prefix on whole segments, so ``/api/v1/examsX`` is not
``/api/v1/exams``. Only ``/api/v1/...`` and ``/.well-known/jwks.json`` are ever
routed: the upstreams' ``/internal``, ``/metrics``, ``/healthz``, ``/readyz``,
``/openapi.json`` and ``/docs`` live at their root and so can never match.

A path is checked on its raw bytes before routing. Anything that a server
behind us could resolve differently than we do (dot segments, empty segments,
backslashes, ``;`` parameters, percent-escapes of ``/ \\ . % ;`` or control
characters and space) is refused, so the segments we route on are exactly the segments
the upstream sees, and no crafted path can climb to ``/internal``.
"""

from __future__ import annotations

from dataclasses import dataclass

_HEX = frozenset(b"0123456789abcdefABCDEF")
# Bytes that must never appear once a percent-escape is decoded: they would
# change the segment structure (/ \ . ;), escape twice (%) or inject control chars and spaces.
_FORBIDDEN_DECODED = frozenset(b"/\\.%;?#") | frozenset(range(0x21)) | {0x7F}
_FORBIDDEN_RAW = (b"//", b"\\", b";", b"\x00")


@dataclass(frozen=True, slots=True)
class Route:
    """One row of the routing table.

    ``path`` is the template used as the metrics label (the kit's metrics
    middleware reads ``scope["route"].path``), never the raw path.
    """

    path: str
    upstream: str
    upload: bool = False
    """Bodies may be as large as MAX_UPLOAD_BYTES instead of MAX_BODY_BYTES."""
    transfer: bool = False
    """Long-running transfer (upload or file download): long total timeout."""
    public: bool = False
    """Never needs a token (the JWKS)."""


JWKS = Route("/.well-known/jwks.json", "auth", public=True)
AUTH = Route("/api/v1/auth", "auth")
USERS = Route("/api/v1/users", "auth")
USERS_IMPORTS = Route("/api/v1/users/imports", "bulk", upload=True, transfer=True)
EXAM_IMPORTS = Route("/api/v1/exams/{id}/imports", "bulk", upload=True, transfer=True)
EXAM_EXPORTS = Route("/api/v1/exams/{id}/exports", "bulk")
JOBS = Route("/api/v1/jobs", "bulk")
JOB_FILES = Route("/api/v1/jobs/{id}/{file}", "bulk", transfer=True)
EXAMS = Route("/api/v1/exams", "results")
ME_RESULTS = Route("/api/v1/me/results", "results")
NOTIFICATIONS = Route("/api/v1/notifications", "notifier")

ALL_ROUTES = (
    JWKS,
    AUTH,
    USERS,
    USERS_IMPORTS,
    EXAM_IMPORTS,
    EXAM_EXPORTS,
    JOBS,
    JOB_FILES,
    EXAMS,
    ME_RESULTS,
    NOTIFICATIONS,
)

# (method, path) pairs under /api/v1 that need no access token (API.md Conventions).
TOKEN_FREE = frozenset(
    {
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/refresh"),
        ("POST", "/api/v1/auth/password/reset"),
    }
)


def is_safe_path(raw_path: bytes) -> bool:
    """Whether a raw request path is one we route without ambiguity (see module doc)."""
    if not raw_path.startswith(b"/") or not raw_path.isascii():
        return False
    if b"%" not in raw_path and b"." not in raw_path:
        # The common case (ids and words only): only the raw checks apply.
        return not any(bad in raw_path for bad in _FORBIDDEN_RAW)
    for bad in _FORBIDDEN_RAW:
        if bad in raw_path:
            return False
    pos = raw_path.find(b"%")
    while pos != -1:
        pair = raw_path[pos + 1 : pos + 3]
        if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
            return False
        if int(pair, 16) in _FORBIDDEN_DECODED:
            return False
        pos = raw_path.find(b"%", pos + 3)
    return all(segment not in (b".", b"..") for segment in raw_path.split(b"/"))


def match_route(path: str) -> Route | None:
    """The route of a decoded path that passed :func:`is_safe_path`, or None (404)."""
    segments = path.split("/")[1:]
    if segments and segments[-1] == "":
        segments.pop()  # a trailing slash routes like the path without it
    if any(s.lower() == "internal" for s in segments):
        return None
    if segments == [".well-known", "jwks.json"]:
        return JWKS
    if len(segments) < 3 or segments[0] != "api" or segments[1] != "v1":
        return None
    head, rest = segments[2], segments[3:]
    if head == "auth":
        return AUTH
    if head == "users":
        return USERS_IMPORTS if rest[:1] == ["imports"] else USERS
    if head == "exams":
        sub = rest[1] if len(rest) >= 2 else None
        if sub == "imports":
            return EXAM_IMPORTS
        if sub == "exports":
            return EXAM_EXPORTS
        return EXAMS
    if head == "jobs":
        return JOB_FILES if len(rest) >= 2 else JOBS
    if head == "me" and rest[:1] == ["results"]:
        return ME_RESULTS
    if head == "notifications":
        return NOTIFICATIONS
    return None


def needs_token(route: Route, method: str, path: str) -> bool:
    return not route.public and (method, path) not in TOKEN_FREE


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What the gateway answers itself, named for the metrics label."""

    path: str


HEALTHZ = Endpoint("/healthz")
READYZ = Endpoint("/readyz")
OPENAPI = Endpoint("/openapi.json")
PREFLIGHT = Endpoint("<preflight>")
