"""Domain metrics of marks (DESIGN.md "Observability": import rows by outcome)."""

from __future__ import annotations

from prometheus_client import Counter

MARK_ENTRIES = Counter(
    "results_mark_entries_total",
    "Mark entries of applied batches by source (api, import) and outcome (written: changed a "
    "stored mark; unchanged: equal to it; failed: invalid).",
    ["source", "outcome"],
)
IMPORT_ROWS = Counter(
    "results_import_rows_total",
    "Rows of mark-import chunks by mode (partial, all_or_nothing, dry_run) and outcome (ok, "
    "unchanged, failed, refused: the whole chunk was refused).",
    ["mode", "outcome"],
)
