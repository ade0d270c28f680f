"""``GET /openapi.json``: the upstreams' documents merged into the public one.

Only paths the gateway really routes to the upstream that documents them are
kept, so ``/internal/...``, ``/healthz``, ``/readyz`` and ``/metrics`` never
appear. Components are merged; a name two upstreams define differently is
renamed in the later one (``Error`` -> ``BulkError``) and its ``$ref``s are
rewritten. The merged document is cached briefly; an upstream that does not
answer is skipped and named in ``x-unavailable``, and such a partial document
is cached for a shorter time so the gap closes soon after the upstream is back.

The gateway's own answers are added to every operation they can meet
(:func:`add_gateway_answers`), in the kit's envelope (the ``Error`` component
is the kit's; an upstream's different one is renamed like any other): 401 and
the ``bearerAuth`` requirement where a token is checked before any upstream
call, 429 for the per-user limit there, 413 over the body limit, 503 when the
upstream is down or too slow, 404 for a path the gateway will not route, and
the header and URL limits (414, 431) when the catalog has codes for them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from service_kit.errors import CATALOG, ErrorCode
from service_kit.openapi import (
    BEARER_AUTH,
    BEARER_SCHEME,
    add_error,
    error_schemas,
    operations,
)

from gateway_service.proxy.client import UpstreamClient
from gateway_service.proxy.errors import UpstreamError
from gateway_service.routing import match_route, needs_token

log = logging.getLogger(__name__)

FETCH_TIMEOUT_SECONDS = 2.0
PARTIAL_CACHE_SECONDS = 5.0

Document = dict[str, Any]


def _rewrite_refs(node: Any, renames: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value in renames:
                out[key] = renames[value]
            else:
                out[key] = _rewrite_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, renames) for item in node]
    return node


def merge_documents(
    documents: Mapping[str, Document | None], *, title: str, version: str
) -> Document:
    """Merges upstream documents (name -> document, None if unavailable)."""
    paths: dict[str, Any] = {}
    # The gateway's own answers refer to the kit's envelope: it comes first, so an
    # upstream whose Error differs is the one renamed.
    components: dict[str, dict[str, Any]] = {
        "schemas": error_schemas(),
        "securitySchemes": {BEARER_AUTH: dict(BEARER_SCHEME)},
    }
    tags: dict[str, Any] = {}
    unavailable = [name for name, doc in documents.items() if doc is None]
    openapi_version = "3.1.0"
    for upstream, doc in documents.items():
        if doc is None:
            continue
        openapi_version = str(doc.get("openapi", openapi_version))
        renames: dict[str, str] = {}
        for kind, entries in (doc.get("components") or {}).items():
            if not isinstance(entries, dict):
                continue
            merged_kind = components.setdefault(kind, {})
            for name, entry in entries.items():
                if name in merged_kind and merged_kind[name] != entry:
                    new_name = upstream.capitalize() + name
                    renames[f"#/components/{kind}/{name}"] = f"#/components/{kind}/{new_name}"
        doc = _rewrite_refs(doc, renames) if renames else doc
        for kind, entries in (doc.get("components") or {}).items():
            if not isinstance(entries, dict):
                continue
            merged_kind = components.setdefault(kind, {})
            for name, entry in entries.items():
                ref = f"#/components/{kind}/{name}"
                merged_kind[renames.get(ref, ref).rsplit("/", 1)[1]] = entry
        for path, item in (doc.get("paths") or {}).items():
            route = match_route(path)
            if route is None or route.upstream != upstream or not isinstance(item, dict):
                continue
            paths[path] = item
        for tag in doc.get("tags") or ():
            if isinstance(tag, dict) and "name" in tag:
                tags.setdefault(tag["name"], tag)
    merged: Document = {
        "openapi": openapi_version,
        "info": {"title": title, "version": version},
        "paths": dict(sorted(paths.items())),
        "components": components,
    }
    if tags:
        merged["tags"] = list(tags.values())
    merged["x-unavailable"] = unavailable
    add_gateway_answers(merged)
    return merged


def _codes_of_status(status: int) -> list[ErrorCode]:
    return [code for code, entry in CATALOG.items() if entry.status == status]


def add_gateway_answers(document: Document) -> None:
    """Documents what the gateway itself answers, on every operation it can meet."""
    for path, method, operation in operations(document):
        route = match_route(path)
        if route is None:
            continue
        if needs_token(route, method.upper(), path):
            # Checked at the gateway before any upstream is called (API.md).
            operation["security"] = [{BEARER_AUTH: []}]
            for code in (
                ErrorCode.AUTH_TOKEN_MISSING,
                ErrorCode.AUTH_TOKEN_INVALID,
                ErrorCode.AUTH_TOKEN_EXPIRED,
            ):
                add_error(operation, code)
            add_error(operation, ErrorCode.RATE_LIMITED, "the caller's requests per minute")
            add_error(
                operation,
                ErrorCode.UPSTREAM_UNAVAILABLE,
                "access tokens cannot be verified right now",
            )
        if "{" in path:
            add_error(operation, ErrorCode.NOT_FOUND, "a path segment the gateway does not route")
        if "requestBody" in operation:
            limit = "MAX_UPLOAD_BYTES" if route.upload else "MAX_BODY_BYTES"
            add_error(operation, ErrorCode.PAYLOAD_TOO_LARGE, f"the body is over {limit}")
        add_error(
            operation,
            ErrorCode.UPSTREAM_UNAVAILABLE,
            f"the {route.upstream} service is down or slow",
        )
        for status, why in ((414, "the URL is too long"), (431, "the headers are too large")):
            for code in _codes_of_status(status):
                add_error(operation, code, why)


class OpenApiDocument:
    """The merged document, cached; concurrent callers share one refresh."""

    def __init__(
        self,
        client: Callable[[], UpstreamClient],
        upstreams: Mapping[str, str],
        *,
        cache_seconds: float,
        title: str,
        version: str,
    ) -> None:
        self._client = client
        self._upstreams = dict(upstreams)
        self._cache_seconds = cache_seconds
        self._title = title
        self._version = version
        self._body: bytes | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def body(self) -> bytes:
        if self._body is not None and time.monotonic() < self._expires:
            return self._body
        async with self._lock:
            if self._body is not None and time.monotonic() < self._expires:
                return self._body
            names = list(self._upstreams)
            fetched = await asyncio.gather(*(self._fetch(n) for n in names))
            merged = merge_documents(
                dict(zip(names, fetched, strict=True)), title=self._title, version=self._version
            )
            ttl = self._cache_seconds
            if merged["x-unavailable"]:
                ttl = min(ttl, PARTIAL_CACHE_SECONDS)
            self._body = orjson.dumps(merged)
            self._expires = time.monotonic() + ttl
            return self._body

    async def _fetch(self, upstream: str) -> Document | None:
        url = self._upstreams[upstream] + "/openapi.json"
        try:
            status, body = await self._client().fetch(url, timeout_seconds=FETCH_TIMEOUT_SECONDS)
            if status != 200:
                return None
            data = orjson.loads(body)
        except (UpstreamError, orjson.JSONDecodeError) as exc:
            log.info("openapi of %s unavailable: %s", upstream, type(exc).__name__)
            return None
        if not isinstance(data, dict) or not isinstance(data.get("paths"), dict):
            return None
        return data
