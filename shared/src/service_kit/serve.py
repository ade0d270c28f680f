"""Runs a service's ASGI app with uvicorn, the same way for every service."""

from __future__ import annotations

import uvicorn


def serve(app_path: str, *, host: str, port: int, workers: int = 1) -> None:
    """Serves ``app_path`` (``"pkg.main:create_app"``, a factory) until SIGINT/SIGTERM.

    uvloop and httptools are the fast paths; ``timeout_graceful_shutdown`` lets
    in-flight requests finish when Kubernetes sends SIGTERM after the preStop.
    """
    uvicorn.run(
        app_path,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        proxy_headers=False,
        # No `Server: uvicorn` (services and gateway alike): it only tells a scanner what to try.
        server_header=False,
        timeout_graceful_shutdown=20,
        timeout_keep_alive=75,
    )
