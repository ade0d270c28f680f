"""``GET /openapi.json``: the upstreams' documents merged into the public one.

Only paths the gateway really routes to the upstream that documents them are
kept, so ``/internal/...``, ``/healthz``, ``/readyz`` and ``/metrics`` never
appear. Components are merged; a name two upstreams define differently is
renamed in the later one (``Error`` -> ``BulkError``) and its ``$ref``s are
rewritten. The merged document is cached briefly; an upstream that does not
answer is skipped and named in ``x-unavailable``, and such a partial document
is cached for a shorter time so the gap closes soon after the upstream is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from gateway_service.proxy.client import UpstreamClient
from gateway_service.proxy.errors import UpstreamError
from gateway_service.routing import match_route

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
    components: dict[str, dict[str, Any]] = {}
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
    return merged


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
