"""Composition root: builds the results app from settings. No logic lives here.

Extension points: add a router to :data:`ROUTERS`, a queue and its handlers
to :data:`CONSUMERS` (``register(events, runtime)``), and a long-running
service to :data:`BACKGROUND` (``factory(runtime) -> BackgroundService``).
Consumers and background services run only when ``RUN_WORKERS`` is on.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from service_kit.app import create_app as create_kit_app

from results_service import __version__
from results_service.api import exams, marks, publication, results
from results_service.generation.wiring import (
    autoregen_service,
    publication_scheduler,
    register_results_consumers,
)
from results_service.jobs.housekeeping import housekeeping
from results_service.messaging.mark_chunks import register_mark_chunks
from results_service.messaging.user_events import register_user_events
from results_service.runtime import BackgroundFactory, ConsumerRegistration, service_lifespan
from results_service.settings import ResultsSettings

ROUTERS: list[APIRouter] = [
    exams.router,
    marks.router,
    results.router,
    publication.router,
    results.internal_router,
]
CONSUMERS: list[ConsumerRegistration] = [
    register_user_events,
    register_mark_chunks,
    register_results_consumers,
]
BACKGROUND: list[BackgroundFactory] = [housekeeping, autoregen_service, publication_scheduler]


def create_app(settings: ResultsSettings | None = None) -> FastAPI:
    settings = settings or ResultsSettings()
    return create_kit_app(
        settings,
        title="results",
        version=__version__,
        routers=ROUTERS,
        lifespan=lambda app: service_lifespan(app, settings, CONSUMERS, BACKGROUND),
    )
