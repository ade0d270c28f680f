"""Builds a service's FastAPI app the same way for every service.

A service's ``main.py`` calls :func:`create_app` with its settings, routers and
lifespan; the kit adds the error envelope, request ids, metrics, health,
tracing and an OpenAPI document that lists every error answer, so no service
can forget one of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from starlette.requests import Request
from starlette.responses import Response

from service_kit.asgi import RequestIdMiddleware, UnhandledErrorMiddleware
from service_kit.handlers import install_error_handlers
from service_kit.health import Readiness, healthz, readyz
from service_kit.logging import configure_logging
from service_kit.metrics import PrometheusMiddleware, metrics_app
from service_kit.openapi import install_openapi
from service_kit.request_guards import ForbiddenCharacterMiddleware, check_json_body
from service_kit.settings import KitSettings
from service_kit.tracing import TracingMiddleware, setup_tracing, tracing_enabled

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


async def _metrics(request: Request) -> Response:
    # Delegates to the raw ASGI app so the exposition format stays prometheus_client's own.
    captured: dict[str, object] = {}

    async def send(message: dict[str, object]) -> None:
        captured[str(message["type"])] = message

    await metrics_app(request.scope, request.receive, send)  # type: ignore[arg-type]
    start = captured["http.response.start"]
    body = captured["http.response.body"]
    assert isinstance(start, dict) and isinstance(body, dict)
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return Response(body["body"], headers=headers)


def create_app(
    settings: KitSettings,
    *,
    title: str,
    version: str,
    routers: Sequence[APIRouter] = (),
    lifespan: Lifespan | None = None,
) -> FastAPI:
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    setup_tracing(settings.service_name)

    @asynccontextmanager
    async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
        if lifespan is None:
            yield
            return
        async with lifespan(app):
            yield

    app = FastAPI(
        title=title,
        version=version,
        lifespan=_lifespan,
        docs_url=None,
        redoc_url=None,
        # `/users/` is a 404 like any unknown path, never a 307 to `/users`: the
        # redirect's absolute Location would name this service's own address,
        # which a client behind the gateway must not learn (issue 8).
        redirect_slashes=False,
        # On every route of every router included, now or later: a route cannot opt out.
        dependencies=[Depends(check_json_body)],
        # FastAPI's own OpenTelemetry layer would trace every request a second time
        # beside the kit's TracingMiddleware (one way for every process, the gateway
        # included, ADR 0021); metrics are Prometheus's and logs the kit's JSON lines.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.readiness = Readiness(settings.readiness_timeout_seconds)
    install_error_handlers(app)
    # /openapi.json lists every failure a route can answer, in the envelope.
    install_openapi(app)
    app.add_route("/healthz", healthz, methods=["GET"], include_in_schema=False)
    app.add_route("/readyz", readyz, methods=["GET"], include_in_schema=False)
    app.add_route("/metrics", _metrics, methods=["GET"], include_in_schema=False)
    for router in routers:
        app.include_router(router)
    # Starlette wraps in reverse order of addition: request ids outermost, so the
    # 500 envelope and the metrics both see the request id.
    app.add_middleware(ForbiddenCharacterMiddleware)
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(PrometheusMiddleware, service=settings.service_name)
    app.add_middleware(RequestIdMiddleware)
    if tracing_enabled():
        # Outermost: the server span covers every layer, so each log line of the
        # request (access line included) carries its trace id.
        app.add_middleware(TracingMiddleware)
    return app
