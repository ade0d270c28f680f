"""Runs a service's ASGI app with uvicorn, the same way for every service."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import cast

import uvicorn

from service_kit.http_protocol import HttpLimits, LimitedHttpToolsProtocol


def serve(app_path: str, *, host: str, port: int, limits: HttpLimits, workers: int = 1) -> None:
    """Serves ``app_path`` (``"pkg.main:create_app"``, a factory) until SIGINT/SIGTERM.

    uvloop and httptools are the fast paths; ``timeout_graceful_shutdown`` lets
    in-flight requests finish when Kubernetes sends SIGTERM after the preStop.
    ``limits`` bound each request's URL and headers while they are parsed
    (:mod:`service_kit.http_protocol`).
    """
    # A partial of a module-level class, not a class made here: with workers > 1
    # uvicorn pickles its config into each worker process. uvicorn only calls it.
    protocol = cast("type[asyncio.Protocol]", partial(LimitedHttpToolsProtocol, limits=limits))
    uvicorn.run(
        app_path,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http=protocol,
        # No service speaks WebSocket: an Upgrade request is answered as plain HTTP
        # (in the envelope), not handed to a handshake that ends in a text/plain 500.
        ws="none",
        lifespan="on",
        access_log=False,
        log_config=None,
        proxy_headers=False,
        # No `Server: uvicorn` (services and gateway alike): it only tells a scanner what to try.
        server_header=False,
        timeout_graceful_shutdown=20,
        timeout_keep_alive=75,
    )
