"""Domain metrics of result generation (DESIGN.md "Observability")."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

GENERATION_DURATION = Histogram(
    "results_generation_duration_seconds",
    "Time of one generation by phase: compute (snapshot into scratch), write (upsert, "
    "fence, events, commit) and total.",
    ["phase"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80),
)
GENERATIONS = Counter(
    "results_generations_total",
    "Generations by outcome: committed; fenced (a newer token was issued, nothing written); "
    "lock_lost (cancelled when the lease ended); failed.",
    ["outcome"],
)
# Exported as 0 from the start, so a rule on fence rejections or failures sees
# the series before the first one.
for _outcome in ("committed", "fenced", "lock_lost", "failed"):
    GENERATIONS.labels(_outcome)
GENERATION_ROWS_CHANGED = Counter(
    "results_generation_rows_changed_total",
    "Result rows inserted, updated or deleted by committed generations.",
)
GENERATION_LOCK_MODE = Counter(
    "results_generation_lock_attempts_total",
    "Lock attempts of the runner by mode (redis, postgres_fallback) and outcome (acquired, busy).",
    ["mode", "outcome"],
)
ENSURE_FRESH_WAIT = Histogram(
    "results_ensure_fresh_wait_seconds",
    "Time callers waited for fresh results (coalesced waits included), by outcome.",
    ["outcome"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
AUTOREGEN = Counter(
    "results_autoregen_total",
    "Automatic regenerations by trigger (event, sweep, schedule) and outcome.",
    ["trigger", "outcome"],
)
