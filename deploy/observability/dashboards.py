"""The platform's Grafana dashboards, as code (grafana-foundation-sdk).

An overview of the whole platform and one dashboard per service. ``make
dashboards`` (deploy/observability/render.py) renders them to JSON under
deploy/k8s/base/observability/dashboards/, where kustomize ships each as a
ConfigMap for Grafana's dashboard sidecar; the same files import into any
Grafana (docs/observability.md "Dashboards and alerts").

Every query reads the metrics the services export under the scrape's ``job``
label, which is the Kubernetes Service's name (a local ``make run`` names its
jobs the same way): ``tests/e2e/test_metrics_no_drift.py`` parses each
expression and fails when a metric it names is not exported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
)

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"
TAGS = ["exam-results", "generated"]

# The scrape jobs of each service: its API, and its worker where it has one.
JOBS = {
    "gateway": "gateway",
    "auth": "auth",
    "results": "results",
    "bulk": "bulk|bulk-worker",
    "notifier": "notifier|notifier-worker",
}
# Gateway routes whose duration is the client's (live streams, uploads, downloads).
LONG_ROUTES = "/api/v1/notifications/stream|.+/imports|/api/v1/jobs/[^/]+/[^/]+"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


def q(expr: str, legend: str = "") -> Query:
    return Query(" ".join(expr.split()), legend)


def quantiles(metric: str, selector: str, by: str = "", legend: str = "") -> list[Query]:
    """p50, p95 and p99 of a histogram, each series grouped ``by`` (and ``le``)."""
    group = f"le, {by}" if by else "le"
    prefix = f"{legend} " if legend else ""
    return [
        q(
            f"histogram_quantile({quantile}, sum by ({group}) "
            f"(rate({metric}_bucket{{{selector}}}[{RATE}])))",
            f"{prefix}p{int(quantile * 100)}",
        )
        for quantile in (0.5, 0.95, 0.99)
    ]


def p95(metric: str, selector: str, by: str) -> Query:
    buckets = f"rate({metric}_bucket{{{selector}}}[{RATE}])"
    return q(
        f"histogram_quantile(0.95, sum by (le, {by}) ({buckets}))",
        "{{" + by.split(",")[0].strip() + "}}",
    )


class Board:
    """One dashboard being laid out: panels flow left to right in rows of 24 columns."""

    def __init__(self, uid: str, title: str, description: str) -> None:
        self._ids = iter(range(1, 1000))
        self.builder = (
            dashboard.Dashboard(title)
            .uid(uid)
            .description(description)
            .tags(TAGS)
            .editable()
            .refresh("30s")
            .time("now-3h", "now")
            .timezone("browser")
            .tooltip(DashboardCursorSync.CROSSHAIR)
            .with_variable(
                dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
            )
        )

    def row(self, title: str) -> Board:
        self.builder.with_row(dashboard.Row(title).id(next(self._ids)))
        return self

    def graph(
        self,
        title: str,
        unit: str,
        queries: list[Query],
        description: str = "",
        width: int = 12,
        stacked: bool = False,
    ) -> Board:
        panel = (
            timeseries.Panel()
            .id(next(self._ids))
            .title(title)
            .description(description)
            .datasource(DATASOURCE)
            .unit(unit)
            .min(0)
            .span(width)
            .height(8)
            .fill_opacity(10)
            .legend(
                common.VizLegendOptions()
                .show_legend(True)
                .display_mode(common_models.LegendDisplayMode.LIST)
                .placement(common_models.LegendPlacement.BOTTOM)
            )
        )
        if stacked:
            panel.stacking(common.StackingConfig().mode(common_models.StackingMode.NORMAL))
        for ref, query in zip("ABCDEFGH", queries, strict=False):
            panel.with_target(
                prometheus.Dataquery().ref_id(ref).expr(query.expr).legend_format(query.legend)
            )
        self.builder.with_panel(panel)
        return self

    def stat(
        self,
        title: str,
        unit: str,
        query: Query,
        description: str = "",
        red_below: float | None = None,
        red_above: float | None = None,
        width: int = 6,
    ) -> Board:
        if red_below is not None:
            steps = [Threshold(value=None, color="red"), Threshold(value=red_below, color="green")]
        elif red_above is not None:
            steps = [Threshold(value=None, color="green"), Threshold(value=red_above, color="red")]
        else:
            steps = [Threshold(value=None, color="blue")]
        self.builder.with_panel(
            stat.Panel()
            .id(next(self._ids))
            .title(title)
            .description(description)
            .datasource(DATASOURCE)
            .unit(unit)
            .span(width)
            .height(5)
            .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]))
            .color_mode(common_models.BigValueColorMode.BACKGROUND)
            .graph_mode(common_models.BigValueGraphMode.AREA)
            .thresholds(dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps))
            .with_target(
                prometheus.Dataquery().ref_id("A").expr(query.expr).legend_format(query.legend)
            )
        )
        return self


# --- rows shared by the per-service dashboards -------------------------------------


def http_rows(board: Board, jobs: str) -> None:
    sel = f'job=~"{jobs}"'
    board.row("HTTP (RED)")
    board.graph(
        "Requests by route",
        "reqps",
        [
            q(
                f"sum by (method, route) (rate(http_requests_total{{{sel}}}[{RATE}]))",
                "{{method}} {{route}}",
            )
        ],
    )
    board.graph(
        "Answers by status",
        "reqps",
        [q(f"sum by (status) (rate(http_requests_total{{{sel}}}[{RATE}]))", "{{status}}")],
        stacked=True,
    )
    board.graph(
        "Share of 5xx answers by route",
        "percentunit",
        [
            q(
                f'sum by (route) (rate(http_requests_total{{{sel}, status=~"5.."}}[{RATE}])) '
                f"/ sum by (route) (rate(http_requests_total{{{sel}}}[{RATE}]))",
                "{{route}}",
            )
        ],
    )
    board.graph(
        "Latency",
        "s",
        quantiles("http_request_duration_seconds", sel),
        "All routes together.",
    )
    board.graph(
        "p95 latency by route",
        "s",
        [p95("http_request_duration_seconds", sel, "route")],
    )
    board.graph(
        "Requests in flight",
        "short",
        [q(f"sum by (instance) (http_requests_in_flight{{{sel}}})", "{{instance}}")],
    )


def process_rows(board: Board, jobs: str) -> None:
    sel = f'job=~"{jobs}"'
    board.row("Saturation")
    board.graph(
        "CPU by process",
        "percentunit",
        [
            q(
                f"sum by (job, instance) (rate(process_cpu_seconds_total{{{sel}}}[{RATE}]))",
                "{{job}} {{instance}}",
            )
        ],
        "CPU seconds per second: 1 is one core.",
        width=8,
    )
    board.graph(
        "Resident memory",
        "bytes",
        [
            q(
                f"sum by (job, instance) (process_resident_memory_bytes{{{sel}}})",
                "{{job}} {{instance}}",
            )
        ],
        width=8,
    )
    board.graph(
        "Open file descriptors",
        "short",
        [q(f"sum by (job, instance) (process_open_fds{{{sel}}})", "{{job}} {{instance}}")],
        width=8,
    )


def pool_rows(board: Board, jobs: str) -> None:
    sel = f'job=~"{jobs}"'
    board.graph(
        "Database pool",
        "short",
        [
            q(
                f"sum by (job, role) (db_pool_connections_in_use{{{sel}}})",
                "in use {{job}} {{role}}",
            ),
            q(f"sum by (job, role) (db_pool_connections_open{{{sel}}})", "open {{job}} {{role}}"),
        ],
    )
    board.graph(
        "Redis pool",
        "short",
        [
            q(f"sum by (job) (redis_pool_connections_in_use{{{sel}}})", "in use {{job}}"),
            q(f"sum by (job) (redis_pool_connections_open{{{sel}}})", "open {{job}}"),
        ],
    )


def messaging_rows(board: Board, jobs: str) -> None:
    sel = f'job=~"{jobs}"'
    board.row("Messaging")
    board.graph(
        "Queue depth (ready in the broker)",
        "short",
        [
            q(f'max by (queue) (messages_queue_ready{{{sel}, kind="work"}})', "{{queue}}"),
            q(
                f'max by (queue) (messages_queue_ready{{{sel}, kind="dead_letter"}})',
                "{{queue}} dead letters",
            ),
        ],
        "Messages waiting in the work and dead-letter queues of this service's consumers.",
    )
    board.graph(
        "Consumers attached",
        "short",
        [q(f"max by (queue) (messages_queue_consumers{{{sel}}})", "{{queue}}")],
        "Consumers RabbitMQ counts on each work queue (one per consuming process).",
    )
    board.graph(
        "Messages handled by queue and outcome",
        "ops",
        [
            q(
                f"sum by (queue, outcome) (rate(messages_handled_total{{{sel}}}[{RATE}]))",
                "{{queue}} {{outcome}}",
            )
        ],
        "duplicate: dropped by the inbox; dead_lettered: sent to the dead-letter queue.",
    )
    board.graph(
        "p95 handling time by queue",
        "s",
        [p95("message_handle_duration_seconds", sel, "queue")],
    )
    board.graph(
        "Messages in process by handler",
        "short",
        [q(f"sum by (handler) (faststream_received_messages_in_process{{{sel}}})", "{{handler}}")],
        "Received and not yet settled; stays up without progress when a consumer is stuck.",
    )
    board.graph(
        "Outbox: oldest unsent row and backlog",
        "s",
        [
            q(f"max by (job) (outbox_oldest_unsent_age_seconds{{{sel}}})", "oldest {{job}}"),
        ],
        "Age of the oldest event not yet published (alert OutboxLagging over 2 minutes).",
    )
    board.graph(
        "Outbox backlog",
        "short",
        [q(f"max by (job) (outbox_backlog{{{sel}}})", "{{job}}")],
    )
    board.graph(
        "Outbox write to broker confirm",
        "s",
        quantiles("outbox_delivery_lag_seconds", sel),
    )


def jobs_and_locks_rows(board: Board, jobs: str) -> None:
    sel = f'job=~"{jobs}"'
    board.row("Periodic jobs and locks")
    board.graph(
        "Periodic job runs by outcome",
        "ops",
        [
            q(
                f"sum by (periodic_job, outcome) (rate(periodic_job_runs_total{{{sel}}}[{RATE}]))",
                "{{periodic_job}} {{outcome}}",
            )
        ],
        "skipped: another replica held the job's lease.",
    )
    board.graph(
        "Time since a periodic job's last success",
        "s",
        [
            q(
                f"time() - max by (periodic_job) "
                f"(periodic_job_last_success_timestamp_seconds{{{sel}}} > 0)",
                "{{periodic_job}}",
            )
        ],
    )
    board.graph(
        "Lock acquisitions by outcome",
        "ops",
        [
            q(
                f"sum by (lock, outcome) (rate(lock_acquisitions_total{{{sel}}}[{RATE}]))",
                "{{lock}} {{outcome}}",
            )
        ],
        "contended: acquired after waiting for another holder.",
    )
    board.graph(
        "p95 lock wait",
        "s",
        [p95("lock_wait_seconds", sel, "lock")],
    )


# --- the dashboards ------------------------------------------------------------------


def overview() -> Board:
    board = Board(
        "exam-results-overview",
        "Exam results / Overview",
        "The platform at a glance: the gateway's SLOs, traffic, errors and latency per "
        "service, saturation, messaging, and generation and import activity.",
    )
    gw = 'service="gateway", route=~"/api/.+|/.well-known/.+"'
    board.row("Gateway SLOs")
    board.stat(
        "Availability, last hour",
        "percentunit",
        q("1 - gateway:slo_availability_errors:ratio_rate1h"),
        "Share of requests answered without a 5xx (SLO 99.9%); recording rule.",
        red_below=0.999,
    )
    board.stat(
        "Answered within 0.5 s, last hour",
        "percentunit",
        q("1 - gateway:slo_latency_slow:ratio_rate1h"),
        "Share of requests (live streams and transfers excluded) answered within 0.5 s "
        "(SLO 99%); recording rule.",
        red_below=0.99,
    )
    board.stat(
        "Availability budget burn rate (1h)",
        "short",
        q("gateway:slo_availability_errors:ratio_rate1h / 0.001"),
        "1 spends the 28-day budget in 28 days; the page fires at 14.4.",
        red_above=6,
    )
    board.stat(
        "Latency budget burn rate (1h)",
        "short",
        q("gateway:slo_latency_slow:ratio_rate1h / 0.01"),
        "1 spends the 28-day budget in 28 days; the page fires at 14.4.",
        red_above=6,
    )
    board.row("Traffic, errors, latency")
    board.graph(
        "Requests per second by service",
        "reqps",
        [q(f"sum by (job) (rate(http_requests_total[{RATE}]))", "{{job}}")],
        stacked=True,
    )
    board.graph(
        "Share of 5xx answers by service",
        "percentunit",
        [
            q(
                f'sum by (job) (rate(http_requests_total{{status=~"5.."}}[{RATE}])) '
                f"/ sum by (job) (rate(http_requests_total[{RATE}]))",
                "{{job}}",
            )
        ],
    )
    board.graph(
        "Gateway latency",
        "s",
        quantiles("http_request_duration_seconds", f'{gw}, route!~"{LONG_ROUTES}"'),
        "Live streams and file transfers excluded.",
    )
    board.graph(
        "p95 latency by service",
        "s",
        [p95("http_request_duration_seconds", 'route!~"/healthz|/readyz"', "job")],
    )
    board.row("Saturation")
    board.graph(
        "CPU by service",
        "percentunit",
        [q(f"sum by (job) (rate(process_cpu_seconds_total[{RATE}]))", "{{job}}")],
        "CPU seconds per second, all processes of a job: 1 is one core.",
        width=8,
    )
    board.graph(
        "Database pool in use",
        "short",
        [q("sum by (job) (db_pool_connections_in_use)", "{{job}}")],
        width=8,
    )
    board.graph(
        "Login hashing",
        "short",
        [
            q("sum(auth_password_hash_in_flight)", "in flight"),
            q(f"sum(rate(auth_password_hash_shed_total[{RATE}]))", "shed per second"),
        ],
        "Hashes queued or running in auth, and calls refused because the queue was full.",
        width=8,
    )
    board.row("Messaging")
    board.graph(
        "Queue depth (ready in the broker)",
        "short",
        [q('max by (queue) (messages_queue_ready{kind="work"})', "{{queue}}")],
        "Messages waiting in each consumer's work queue, as RabbitMQ counts them (alert "
        "ConsumerStalled when they wait and nothing is handled).",
    )
    board.graph(
        "Dead-letter queue depth",
        "short",
        [q('max by (queue) (messages_queue_ready{kind="dead_letter"})', "{{queue}}")],
        "Messages parked in each consumer's dead-letter queue (alert DeadLetterQueueGrowing).",
    )
    board.graph(
        "Messages in process by handler",
        "short",
        [
            q(
                "sum by (job, handler) (faststream_received_messages_in_process)",
                "{{job}} {{handler}}",
            )
        ],
        "Messages received and not yet settled.",
        width=8,
    )
    board.graph(
        "Messages handled by outcome",
        "ops",
        [q(f"sum by (outcome) (rate(messages_handled_total[{RATE}]))", "{{outcome}}")],
        width=8,
    )
    board.graph(
        "Dead letters",
        "short",
        [
            q(
                f'sum by (queue) (increase(messages_handled_total{{outcome="dead_lettered"}}'
                f"[{RATE}]))",
                "{{queue}}",
            ),
            q(
                f"sum by (channel) (increase(notifier_deliveries_dead_lettered_total[{RATE}]))",
                "deliveries {{channel}}",
            ),
        ],
        "Messages sent to a dead-letter queue, and notifier deliveries given up.",
        width=8,
    )
    board.graph(
        "Outbox: oldest unsent row",
        "s",
        [q("max by (job) (outbox_oldest_unsent_age_seconds)", "{{job}}")],
        width=12,
    )
    board.graph(
        "Outbox backlog",
        "short",
        [q("max by (job) (outbox_backlog)", "{{job}}")],
        width=12,
    )
    board.row("Activity")
    board.graph(
        "Result generations by outcome",
        "ops",
        [q(f"sum by (outcome) (rate(results_generations_total[{RATE}]))", "{{outcome}}")],
        "fenced: a newer generation was issued and this one wrote nothing.",
        width=8,
    )
    board.graph(
        "Generation time",
        "s",
        quantiles("results_generation_duration_seconds", 'phase="total"'),
        width=8,
    )
    board.graph(
        "Import rows by outcome",
        "ops",
        [q(f"sum by (outcome) (rate(bulk_import_rows_total[{RATE}]))", "{{outcome}}")],
        width=8,
    )
    board.graph(
        "Bulk jobs finished",
        "ops",
        [
            q(
                f"sum by (kind, status) (rate(bulk_jobs_finished_total[{RATE}]))",
                "{{kind}} {{status}}",
            )
        ],
        width=8,
    )
    board.graph(
        "Deliveries by channel and outcome",
        "ops",
        [
            q(
                f"sum by (channel, outcome) (rate(notifier_deliveries_total[{RATE}]))",
                "{{channel}} {{outcome}}",
            )
        ],
        width=8,
    )
    board.graph(
        "Sign-ins by outcome",
        "ops",
        [q(f"sum by (outcome) (rate(auth_login_attempts_total[{RATE}]))", "{{outcome}}")],
        width=8,
    )
    return board


def service_board(name: str, description: str) -> Board:
    return Board(f"exam-results-{name}", f"Exam results / {name}", description)


def gateway() -> Board:
    jobs = JOBS["gateway"]
    board = service_board("gateway", "The public entry: RED by route, upstreams, refusals.")
    http_rows(board, jobs)
    board.row("Upstreams")
    board.graph(
        "p95 upstream response time",
        "s",
        [p95("gateway_upstream_response_seconds", f'job=~"{jobs}"', "upstream")],
        "From sending a request upstream to its response headers.",
    )
    board.graph(
        "Upstream failures (answered 503)",
        "ops",
        [
            q(
                f"sum by (upstream, reason) (rate(gateway_upstream_failures_total[{RATE}]))",
                "{{upstream}} {{reason}}",
            )
        ],
    )
    board.graph(
        "Upstream connections",
        "short",
        [q("sum by (upstream, state) (gateway_upstream_connections)", "{{upstream}} {{state}}")],
        "Pooled connections per upstream (exported with GATEWAY_WORKERS=1).",
    )
    board.graph(
        "Refusals",
        "ops",
        [
            q(f"sum by (code) (rate(gateway_auth_rejections_total[{RATE}]))", "401 {{code}}"),
            q(f"sum(rate(gateway_rate_limited_total[{RATE}]))", "429 rate limited"),
            q(f"sum(rate(gateway_body_too_large_total[{RATE}]))", "413 body too large"),
            q(
                f'sum by (scope) (rate(access_token_revoked_refusals_total{{job=~"{jobs}"}}'
                f"[{RATE}]))",
                "revoked {{scope}}",
            ),
        ],
    )
    board.graph(
        "Rate-limit store errors",
        "ops",
        [q(f"sum(rate(gateway_rate_limit_store_errors_total[{RATE}]))", "errors")],
        "Failed exchanges with Redis; the limit fails open meanwhile.",
    )
    process_rows(board, jobs)
    return board


def auth() -> Board:
    jobs = JOBS["auth"]
    board = service_board("auth", "Sign-ins, tokens and the password-hashing pool.")
    http_rows(board, jobs)
    board.row("Sign-in")
    board.graph(
        "Sign-ins by outcome",
        "ops",
        [q(f"sum by (outcome) (rate(auth_login_attempts_total[{RATE}]))", "{{outcome}}")],
    )
    board.graph(
        "Token refreshes by outcome",
        "ops",
        [q(f"sum by (outcome) (rate(auth_token_refreshes_total[{RATE}]))", "{{outcome}}")],
        "reused: a refresh token presented twice (the session is revoked).",
    )
    board.graph(
        "Password resets by outcome",
        "ops",
        [q(f"sum by (outcome) (rate(auth_password_reset_requests_total[{RATE}]))", "{{outcome}}")],
    )
    board.graph(
        "Sign-ins unchecked (Redis down)",
        "ops",
        [q(f"sum(rate(auth_login_limits_unavailable_total[{RATE}]))", "unchecked")],
    )
    board.row("Password hashing")
    board.graph(
        "Hashing in flight",
        "short",
        [q("sum by (instance) (auth_password_hash_in_flight)", "{{instance}}")],
        "Hashes and verifies queued or running.",
    )
    board.graph(
        "Shed calls by operation",
        "ops",
        [q(f"sum by (operation) (rate(auth_password_hash_shed_total[{RATE}]))", "{{operation}}")],
        "Answered 503 without hashing: the queue was over its budget (alert LoginHashingShedding).",
    )
    board.graph(
        "Wait for a hashing thread",
        "s",
        quantiles("auth_password_hash_queue_wait_seconds", f'job=~"{jobs}"'),
    )
    board.graph(
        "p95 hash time by operation",
        "s",
        [p95("auth_password_hash_duration_seconds", f'job=~"{jobs}"', "operation")],
    )
    process_rows(board, jobs)
    pool_rows(board, jobs)
    messaging_rows(board, jobs)
    jobs_and_locks_rows(board, jobs)
    return board


def results() -> Board:
    jobs = JOBS["results"]
    board = service_board(
        "results", "Marks, fenced result generation, publication, the export and caches."
    )
    http_rows(board, jobs)
    board.row("Generation")
    board.graph(
        "Generations by outcome",
        "ops",
        [q(f"sum by (outcome) (rate(results_generations_total[{RATE}]))", "{{outcome}}")],
        "fenced: refused by the fence; lock_lost: cancelled when the lease ended.",
    )
    board.graph(
        "p95 generation time by phase",
        "s",
        [p95("results_generation_duration_seconds", f'job=~"{jobs}"', "phase")],
    )
    board.graph(
        "Result rows changed",
        "ops",
        [q(f"sum(rate(results_generation_rows_changed_total[{RATE}]))", "rows")],
    )
    board.graph(
        "Generation lock attempts",
        "ops",
        [
            q(
                f"sum by (mode, outcome) (rate(results_generation_lock_attempts_total[{RATE}]))",
                "{{mode}} {{outcome}}",
            )
        ],
        "postgres_fallback: Redis was unavailable.",
    )
    board.graph(
        "Wait for fresh results",
        "s",
        [p95("results_ensure_fresh_wait_seconds", f'job=~"{jobs}"', "outcome")],
    )
    board.graph(
        "Automatic regenerations",
        "ops",
        [
            q(
                f"sum by (trigger, outcome) (rate(results_autoregen_total[{RATE}]))",
                "{{trigger}} {{outcome}}",
            )
        ],
    )
    board.row("Marks and imports")
    board.graph(
        "Mark entries by source and outcome",
        "ops",
        [
            q(
                f"sum by (source, outcome) (rate(results_mark_entries_total[{RATE}]))",
                "{{source}} {{outcome}}",
            )
        ],
    )
    board.graph(
        "Import chunk rows by mode and outcome",
        "ops",
        [
            q(
                f"sum by (mode, outcome) (rate(results_import_rows_total[{RATE}]))",
                "{{mode}} {{outcome}}",
            )
        ],
    )
    board.graph(
        "Cache hit ratio",
        "percentunit",
        [
            q(
                f'sum by (cache) (rate(results_cache_requests_total{{outcome="hit"}}[{RATE}])) '
                f"/ sum by (cache) (rate(results_cache_requests_total[{RATE}]))",
                "{{cache}}",
            )
        ],
    )
    board.graph(
        "Cache lookups by outcome",
        "ops",
        [
            q(
                f"sum by (cache, outcome) (rate(results_cache_requests_total[{RATE}]))",
                "{{cache}} {{outcome}}",
            )
        ],
    )
    process_rows(board, jobs)
    pool_rows(board, jobs)
    messaging_rows(board, jobs)
    jobs_and_locks_rows(board, jobs)
    return board


def bulk() -> Board:
    jobs = JOBS["bulk"]
    board = service_board("bulk", "Imports and exports: jobs, rows, chunks, workers.")
    http_rows(board, jobs)
    board.row("Jobs")
    board.graph(
        "Jobs taken by kind",
        "ops",
        [q(f"sum by (kind) (rate(bulk_jobs_taken_total[{RATE}]))", "{{kind}}")],
        "First runs and takeovers of an expired lease.",
    )
    board.graph(
        "Jobs finished by kind and status",
        "ops",
        [
            q(
                f"sum by (kind, status) (rate(bulk_jobs_finished_total[{RATE}]))",
                "{{kind}} {{status}}",
            )
        ],
    )
    board.graph(
        "p95 job duration by kind",
        "s",
        [p95("bulk_job_duration_seconds", f'job=~"{jobs}"', "kind")],
        "From creation to the end of the job.",
    )
    board.graph(
        "Import rows by outcome",
        "ops",
        [
            q(
                f"sum by (kind, outcome) (rate(bulk_import_rows_total[{RATE}]))",
                "{{kind}} {{outcome}}",
            )
        ],
    )
    board.graph(
        "Chunks sent",
        "ops",
        [
            q(
                f"sum by (kind, resend) (rate(bulk_import_chunks_sent_total[{RATE}]))",
                "{{kind}} resend={{resend}}",
            )
        ],
    )
    process_rows(board, jobs)
    pool_rows(board, jobs)
    messaging_rows(board, jobs)
    jobs_and_locks_rows(board, jobs)
    return board


def notifier() -> Board:
    jobs = JOBS["notifier"]
    board = service_board("notifier", "Notifications, deliveries and live streams.")
    http_rows(board, jobs)
    board.row("Notifications and deliveries")
    board.graph(
        "Notifications created by kind",
        "ops",
        [q(f"sum by (kind) (rate(notifier_notifications_created_total[{RATE}]))", "{{kind}}")],
    )
    board.graph(
        "Recipients unknown",
        "ops",
        [q(f"sum by (kind) (rate(notifier_recipients_unknown_total[{RATE}]))", "{{kind}}")],
    )
    board.graph(
        "Deliveries by channel and outcome",
        "ops",
        [
            q(
                f"sum by (channel, outcome) (rate(notifier_deliveries_total[{RATE}]))",
                "{{channel}} {{outcome}}",
            )
        ],
    )
    board.graph(
        "Deliveries dead-lettered",
        "short",
        [
            q(
                f"sum by (channel) (increase(notifier_deliveries_dead_lettered_total[{RATE}]))",
                "{{channel}}",
            )
        ],
        "Given up after the last retry tier (alert DeliveriesDeadLettered).",
    )
    board.graph(
        "p95 send time by channel",
        "s",
        [p95("notifier_delivery_send_duration_seconds", f'job=~"{jobs}"', "channel")],
    )
    board.row("Live streams")
    board.graph(
        "Open streams",
        "short",
        [q(f'sum by (instance) (notifier_streams_open{{job=~"{jobs}"}})', "{{instance}}")],
    )
    board.graph(
        "Stream events",
        "ops",
        [q(f"sum by (event) (rate(notifier_stream_events_total[{RATE}]))", "{{event}}")],
    )
    board.graph(
        "Listener reconnects",
        "short",
        [q(f"sum(increase(notifier_stream_listener_reconnects_total[{RATE}]))", "reconnects")],
    )
    process_rows(board, jobs)
    pool_rows(board, jobs)
    messaging_rows(board, jobs)
    jobs_and_locks_rows(board, jobs)
    return board


BOARDS = {
    "overview": overview,
    "gateway": gateway,
    "auth": auth,
    "results": results,
    "bulk": bulk,
    "notifier": notifier,
}


def render() -> dict[str, str]:
    """File name -> dashboard JSON, as committed."""
    encoder = JSONEncoder(sort_keys=True, indent=2)
    rendered: dict[str, str] = {}
    for name, make in BOARDS.items():
        model = json.loads(encoder.encode(make().builder.build()))
        rendered[f"{name}.json"] = json.dumps(model, indent=2, sort_keys=True) + "\n"
    return rendered
