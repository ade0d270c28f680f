"""Metrics of bulk's jobs (Prometheus naming: ``bulk_`` prefix, base units, ``_total``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

JOBS_TAKEN = Counter(
    "bulk_jobs_taken_total", "Jobs a worker claimed (first runs and takeovers).", ["kind"]
)
JOBS_FINISHED = Counter(
    "bulk_jobs_finished_total", "Jobs that ended, by kind and final status.", ["kind", "status"]
)
JOB_DURATION = Histogram(
    "bulk_job_duration_seconds",
    "From creation to the end of a job, by kind and final status.",
    ["kind", "status"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600),
)
IMPORT_ROWS = Counter(
    "bulk_import_rows_total",
    "Import entries by outcome: ok, unchanged, failed (local checks and the addressee's).",
    ["kind", "outcome"],
)
CHUNKS_SENT = Counter(
    "bulk_import_chunks_sent_total",
    "Chunks sent to results or auth (resends included).",
    ["kind", "resend"],
)
