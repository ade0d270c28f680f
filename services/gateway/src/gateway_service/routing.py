"""The public routing table: which upstream serves a path, and what the path may look like.

Routing is by path prefix on whole segments, so ``/api/v1/examsX`` is not
``/api/v1/exams``. Only ``/api/v1/...`` and ``/.well-known/jwks.json`` are ever
routed: the upstreams' ``/internal``, ``/metrics``, ``/healthz``, ``/readyz``,
``/openapi.json`` and ``/docs`` live at their root and so can never match.
:data:`ROUTES` is the only place a route is written down: the matcher is
built from it at import, so a new route is one new row.

A path is checked on its raw bytes before routing. Anything that a server
behind us could resolve differently than we do (dot segments, empty segments,
backslashes, ``;`` parameters, percent-escapes of ``/ \\ . % ;`` or control
characters and space) is refused, so the segments we route on are exactly the segments
the upstream sees, and no crafted path can climb to ``/internal``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

_HEX = frozenset(b"0123456789abcdefABCDEF")
# Bytes that must never appear once a percent-escape is decoded: they would
# change the segment structure (/ \ . ;), escape twice (%) or inject control chars and spaces.
_FORBIDDEN_DECODED = frozenset(b"/\\.%;?#") | frozenset(range(0x21)) | {0x7F}
_FORBIDDEN_RAW = (b"//", b"\\", b";", b"\x00")


@dataclass(frozen=True, slots=True)
class Route:
    """One row of the routing table.

    ``path`` is the template that is matched (``{name}`` stands for any one
    segment) and the metrics label (the kit's metrics middleware reads
    ``scope["route"].path``), never the raw path.
    """

    path: str
    upstream: str
    upload: bool = False
    """Bodies may be as large as MAX_UPLOAD_BYTES instead of MAX_BODY_BYTES."""
    transfer: bool = False
    """Long-running transfer (upload or file download): long total timeout."""
    stream: bool = False
    """A live event stream (server-sent events): the upstream's timeouts bound only
    the wait for its answer's head, and every chunk is passed on as it arrives."""
    public: bool = False
    """Never needs a token (the JWKS)."""
    prefix: bool = True
    """Paths below the template route here too; False: only the template itself."""


# One row per route; the most specific template wins (see RouteTable), so the
# order of the rows does not matter.
ROUTES: tuple[Route, ...] = (
    Route("/.well-known/jwks.json", "auth", public=True, prefix=False),
    Route("/api/v1/auth", "auth"),
    Route("/api/v1/users", "auth"),
    Route("/api/v1/users/imports", "bulk", upload=True, transfer=True),
    Route("/api/v1/exams", "results"),
    Route("/api/v1/exams/{id}/imports", "bulk", upload=True, transfer=True),
    Route("/api/v1/exams/{id}/exports", "bulk"),
    Route("/api/v1/jobs", "bulk"),
    Route("/api/v1/jobs/{id}/{file}", "bulk", transfer=True),
    Route("/api/v1/me/results", "results"),
    Route("/api/v1/notifications", "notifier"),
    Route("/api/v1/notifications/stream", "notifier", stream=True, prefix=False),
)

# (method, path) pairs under /api/v1 that need no access token (API.md Conventions).
TOKEN_FREE = frozenset(
    {
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/refresh"),
        ("POST", "/api/v1/auth/password/forgot"),
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


class _Node:
    """One segment of the template trie: literal children by name, at most one ``{name}``."""

    __slots__ = ("literals", "route", "wildcard")

    def __init__(self) -> None:
        self.literals: dict[str, _Node] = {}
        self.wildcard: _Node | None = None
        self.route: Route | None = None


class _State:
    """Where a walk can be after some segments: every template node that fits them.

    Precomputed so that a request pays one dict lookup per segment, never a
    backtrack over ``{name}`` alternatives.
    """

    __slots__ = ("at_end", "below", "next", "other")

    def __init__(self) -> None:
        self.next: dict[str, _State] = {}
        self.other: _State | None = None
        """Where any segment not in ``next`` leads (a ``{name}``), if anywhere."""
        self.at_end: Route | None = None
        """The route if the path ends here."""
        self.below: Route | None = None
        """The route if the path goes on and nothing deeper matches (prefix rows only)."""


class RouteTable:
    """The matcher built from the rows, once: one dict lookup per segment, no regex.

    Of the rows that match a path, the most specific wins: the longest template,
    and between templates of one length a literal segment beats ``{name}`` at the
    first place they differ (``/exams/stats`` beats ``/exams/{id}``). Rows that
    would match exactly the same paths are refused when the table is built.
    """

    def __init__(self, routes: Iterable[Route]) -> None:
        root = _Node()
        for route in routes:
            _add(root, route)
        self._start = _determinize(root)

    def match(self, path: str) -> Route | None:
        """The route of a decoded path that passed :func:`is_safe_path`, or None (404)."""
        segments = path.split("/")[1:]
        if segments and segments[-1] == "":
            segments.pop()  # a trailing slash routes like the path without it
        # The substring test spares the per-segment check on almost every request.
        if "internal" in path.lower() and any(s.lower() == "internal" for s in segments):
            return None
        best: Route | None = None
        state = self._start
        for segment in segments:
            following = state.next.get(segment, state.other)
            if following is None:
                return best
            state = following
            if state.below is not None:
                best = state.below
        return state.at_end if state.at_end is not None else best


def _add(root: _Node, route: Route) -> None:
    node = root
    for segment in _template_segments(route.path):
        if segment.startswith("{"):
            if node.wildcard is None:
                node.wildcard = _Node()
            node = node.wildcard
        else:
            node = node.literals.setdefault(segment, _Node())
    if node.route is not None:
        raise ValueError(f"routes {node.route.path} and {route.path} match the same paths")
    node.route = route


def _determinize(root: _Node) -> _State:
    """The trie as a deterministic automaton (subset construction).

    A state stands for a tuple of trie nodes ordered by specificity: following a
    segment, each node's literal child comes before its ``{name}`` child, so the
    first node with a route holds the most specific one of that length.
    """
    states: dict[tuple[int, ...], _State] = {}

    def state_of(nodes: tuple[_Node, ...]) -> _State:
        key = tuple(id(node) for node in nodes)
        if key in states:
            return states[key]
        state = states[key] = _State()
        state.at_end = next((n.route for n in nodes if n.route is not None), None)
        state.below = next((n.route for n in nodes if n.route and n.route.prefix), None)
        for name in dict.fromkeys(name for n in nodes for name in n.literals):
            following: list[_Node] = []
            for node in nodes:
                if name in node.literals:
                    following.append(node.literals[name])
                if node.wildcard is not None:
                    following.append(node.wildcard)
            state.next[name] = state_of(tuple(following))
        wildcards = tuple(n.wildcard for n in nodes if n.wildcard is not None)
        if wildcards:
            state.other = state_of(wildcards)
        return state

    return state_of((root,))


def _template_segments(template: str) -> list[str]:
    segments = template.split("/")
    if segments[0] != "" or len(segments) < 2:
        raise ValueError(f"route template {template!r} must start with /")
    for segment in segments[1:]:
        if not segment:
            raise ValueError(f"route template {template!r} has an empty segment")
        if ("{" in segment or "}" in segment) and not (
            segment.startswith("{") and segment.endswith("}") and len(segment) > 2
        ):
            raise ValueError(f"route template {template!r}: {{name}} must be a whole segment")
        if segment.lower() == "internal":
            # match() refuses such paths, so the row could never be reached.
            raise ValueError(f"route template {template!r} has an internal segment")
    return segments[1:]


_TABLE = RouteTable(ROUTES)


def match_route(path: str) -> Route | None:
    """The route of a decoded path that passed :func:`is_safe_path`, or None (404)."""
    return _TABLE.match(path)


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
