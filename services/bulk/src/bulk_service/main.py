"""Composition root: what the bulk service is made of. Wiring only, no logic.

The API stores uploads and queues jobs; the worker (``RUN_WORKERS`` on, or
the ``worker`` command) runs them: its consumers take job commands and chunk
answers, its runner holds the jobs it claimed under leases, and its periodic
jobs take over orphaned jobs, resend unanswered chunks and apply retention.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import httpx
from fastapi import FastAPI
from service_kit.host import Kit, Needs, Parts, ServiceHost
from service_kit.jobs import holder_id

from bulk_service import __version__
from bulk_service.api import imports, jobs
from bulk_service.clients.results import ResultsClient
from bulk_service.domain.jobs import JobKind
from bulk_service.domain.sheets import ReadLimits
from bulk_service.jobs.exports import ExportWork
from bulk_service.jobs.housekeeping import resend_job, retention_job
from bulk_service.jobs.imports import ImportWork
from bulk_service.jobs.rules import RulesFactory
from bulk_service.jobs.runner import JobRunner
from bulk_service.messaging.consumers import register_chunk_answers, register_job_commands
from bulk_service.settings import SCHEMA, BulkSettings


def wire(kit: Kit[BulkSettings]) -> Parts[BulkSettings]:
    s, db = kit.settings, kit.db
    # Carries bulk's service token: results' internal endpoints refuse calls without one.
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(s.results_timeout_seconds), auth=kit.service_tokens.auth("results")
    )
    results = ResultsClient(http, s.results_url)
    limits = ReadLimits(max_columns=s.max_columns, max_cell_chars=s.max_cell_chars)
    importer = ImportWork(
        db,
        RulesFactory(results, patience_seconds=s.results_patience_seconds).rules_for,
        limits=limits,
        batch_rows=s.staging_batch_rows,
        chunk_rows={
            JobKind.MARKS_IMPORT: s.marks_chunk_rows,
            JobKind.USERS_IMPORT: s.users_chunk_rows,
        },
    )
    exporter = ExportWork(
        db, results, part_bytes=s.upload_part_bytes, patience_seconds=s.results_patience_seconds
    )
    runner = JobRunner(
        db,
        {
            JobKind.MARKS_IMPORT: importer,
            JobKind.USERS_IMPORT: importer,
            JobKind.RESULTS_EXPORT: exporter,
        },
        owner=holder_id(),
        lease_seconds=s.job_lease_seconds,
        capacity=s.max_running_jobs,
        sweep_seconds=s.job_sweep_seconds,
    )
    return Parts(
        provides={ResultsClient: results, BulkSettings: s, JobRunner: runner},
        consumers=[
            partial(register_job_commands, db=db, runner=runner),
            partial(register_chunk_answers, db=db),
        ],
        jobs=[runner.sweep_job(), resend_job(db, s), retention_job(db, s)],
        background=[runner],
        on_stop=[http.aclose],
    )


SERVICE = ServiceHost(
    title="bulk",
    version=__version__,
    settings_type=BulkSettings,
    wire=wire,
    routers=[imports.router, jobs.router],
    # Sent rows go soon: users.import_chunk commands carry initial passwords.
    needs=Needs(schema=SCHEMA, outbox=True, outbox_retention=timedelta(hours=1)),
)


def create_app(settings: BulkSettings | None = None) -> FastAPI:
    return SERVICE.api_app(settings)


def create_worker_app(settings: BulkSettings | None = None) -> FastAPI:
    return SERVICE.worker_app(settings)
