"""Domain metrics of the auth service (the kit serves them on ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LOGIN_ATTEMPTS = Counter(
    "auth_login_attempts_total",
    "Sign-in attempts by outcome: success, invalid_credentials, rate_limited_email, "
    "rate_limited_address.",
    ["outcome"],
)
TOKEN_REFRESHES = Counter(
    "auth_token_refreshes_total",
    "Refresh-token presentations by outcome: success, invalid, reused.",
    ["outcome"],
)
PASSWORD_HASH_DURATION = Histogram(
    "auth_password_hash_duration_seconds",
    "Time to hash or verify a password with Argon2id, queueing for a thread excluded.",
    ["operation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
PASSWORD_HASH_QUEUE_WAIT = Histogram(
    "auth_password_hash_queue_wait_seconds",
    "Time a hash or verify waited for a thread of the hashing pool.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
PASSWORD_HASH_IN_FLIGHT = Gauge(
    "auth_password_hash_in_flight",
    "Hashes and verifies submitted to the hashing pool and not finished (waiting or running).",
)
PASSWORD_HASH_SHED = Counter(
    "auth_password_hash_shed_total",
    "Calls answered 503 UPSTREAM_UNAVAILABLE without hashing because the hashing queue "
    "was over its budget or cap, by operation: login, password_change, password_reset, "
    "user_create.",
    ["operation"],
)
LOGIN_LIMITS_UNAVAILABLE = Counter(
    "auth_login_limits_unavailable_total",
    "Sign-in attempts let through unchecked because Redis did not answer.",
)
PASSWORD_RESET_REQUESTS = Counter(
    "auth_password_reset_requests_total",
    "Password reset requests by outcome: issued (a token was sent), not_issued (unknown "
    "address or deactivated user), failed (after the answer), rate_limited_email, "
    "rate_limited_address.",
    ["outcome"],
)

# Exported at 0 from the start: a dashboard or alert (LoginHashingShedding) reads
# them before the first shed or reset, and increase() sees the first one.
for _operation in ("login", "password_change", "password_reset", "user_create"):
    PASSWORD_HASH_SHED.labels(_operation)
for _outcome in ("issued", "not_issued", "failed", "rate_limited_email", "rate_limited_address"):
    PASSWORD_RESET_REQUESTS.labels(_outcome)
