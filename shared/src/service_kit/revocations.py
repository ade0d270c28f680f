"""Access-token revocation that takes effect everywhere within a second (docs/adr/0011).

An access token is a signed JWT that every service verifies on its own, so
on its own it lives until it expires (15 minutes). auth records every event
that must end tokens sooner, in the same transaction as the change itself:

* a **session** ends (logout, refresh-token reuse, a password change for the
  other sessions, an inactive user's refresh): every token whose ``sid`` is
  that session is revoked;
* a **user's access epoch** rises (deactivation, role change, password
  reset): every token of that user carrying a lower ``access_epoch`` claim is
  revoked. The claim counts, so a token issued a millisecond after a role
  change (with the new role) is never caught by it, which a "not before"
  time in whole seconds could not promise.

Every process that verifies tokens holds those records in memory
(:class:`RevocationList`) and checks each token against them with two dict
lookups: no network call per request. A kit periodic job asks auth for what is
new (``GET /internal/revocations?after=<cursor>``, with this service's
credential) every ``REVOCATION_POLL_SECONDS`` (0.5 s), and the first sync,
at start, loads everything still relevant. A record matters only while a
token issued before it can still be valid, so each carries ``expires_at``
(its time plus the token lifetime and leeway) and is dropped after it: the
list is bounded by the revocations of one token lifetime.

The cursor is a PostgreSQL transaction id, not the row's serial: serials are
handed out when rows are inserted but become visible when their transactions
commit, in another order, so "rows after the last serial seen" could skip a
revocation that committed late. auth answers with the oldest transaction
still running at the moment it read (``pg_snapshot_xmin``); anything that
commits later has an id at least that high, so the next poll finds it.
Records may come twice; applying one twice changes nothing.

If auth cannot be reached the list keeps what it knows (auth being down also
means nobody is being revoked) for ``REVOCATION_MAX_STALENESS_SECONDS``; past
that, and before the first sync ever succeeded, tokens cannot be vouched for
and the verifier answers 503 rather than let a revoked token through.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

import httpx
from prometheus_client import Counter, Gauge
from pydantic import BaseModel, ConfigDict

from service_kit.errors import Unauthorized, UpstreamUnavailable
from service_kit.jobs import PeriodicJob

log = logging.getLogger(__name__)

REVOCATIONS_PATH = "/internal/revocations"

REVOKED_TOKENS = Counter(
    "access_token_revoked_refusals_total",
    "Requests refused because their access token was revoked, by what revoked it.",
    ["scope"],
)
for _scope in ("session", "user"):
    REVOKED_TOKENS.labels(_scope)  # exported at 0 before the first refusal
REVOCATIONS_HELD = Gauge(
    "access_token_revocations_held",
    "Revocations this process holds in memory, by scope (session or user).",
    ["scope"],
)
REVOCATIONS_LAST_SYNC = Gauge(
    "access_token_revocations_last_sync_timestamp_seconds",
    "Unix time of the last successful sync of revocations from auth (0 before the first).",
)


class RevocationRecord(BaseModel):
    """One revocation, as auth's ``/internal/revocations`` answers it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    seq: int
    user_id: uuid.UUID
    session_id: uuid.UUID | None = None
    """Set: every token of this session is revoked."""
    min_access_epoch: int | None = None
    """Set: every token of ``user_id`` with a lower ``access_epoch`` is revoked."""
    expires_at: datetime
    """After this no token it could end is valid any more: forget it."""


class RevocationFeed(BaseModel):
    """One answer of ``/internal/revocations``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    revocations: list[RevocationRecord]
    next_after: int
    """The cursor of the next call (an opaque, non-decreasing number)."""


RevocationSource = Callable[[int], Awaitable[RevocationFeed]]
"""Reads the revocations recorded after a cursor (0: all that still matter)."""


class RevocationList:
    """The revocations that still matter, in memory; checked on every verified token."""

    def __init__(self, source: RevocationSource, *, max_staleness_seconds: float) -> None:
        self._source = source
        self._max_staleness = max_staleness_seconds
        self._after = 0
        self._sessions: dict[str, float] = {}
        """Revoked session (as the ``sid`` claim writes it) -> when the record expires.

        Keyed by the text of the id: the check on every request is then one dict
        lookup, with no UUID to parse."""
        self._epochs: dict[uuid.UUID, tuple[int, float]] = {}
        """User -> (lowest access epoch still valid, when the record expires)."""
        self._synced_at: float | None = None
        """Monotonic time of the last successful sync."""

    def ensure_current(self) -> None:
        """Raises 503 when the list cannot be trusted: never synced, or stale for too long."""
        if self._synced_at is None or time.monotonic() - self._synced_at > self._max_staleness:
            raise UpstreamUnavailable("Access tokens cannot be verified right now.")

    async def ready(self) -> None:
        """The readiness check: fails while tokens would be answered 503."""
        self.ensure_current()

    def check(self, user_id: uuid.UUID, session_id: str | None, access_epoch: int) -> None:
        """Raises 401 when the token is revoked; 503 when the list cannot be trusted."""
        self.ensure_current()
        if session_id is not None and session_id in self._sessions:
            REVOKED_TOKENS.labels("session").inc()
            raise Unauthorized()
        epoch = self._epochs.get(user_id)
        if epoch is not None and access_epoch < epoch[0]:
            REVOKED_TOKENS.labels("user").inc()
            raise Unauthorized()

    def apply(self, feed: RevocationFeed, *, now: float | None = None) -> None:
        """Takes in one answer of the feed (records seen before change nothing)."""
        now = time.time() if now is None else now
        for record in feed.revocations:
            expires = record.expires_at.timestamp()
            if expires <= now:
                continue
            if record.session_id is not None:
                # str(UUID) is the form auth writes in ``sid`` (lower case, hyphens).
                sid = str(record.session_id)
                self._sessions[sid] = max(self._sessions.get(sid, 0.0), expires)
            if record.min_access_epoch is not None:
                epoch, until = self._epochs.get(record.user_id, (0, 0.0))
                self._epochs[record.user_id] = (
                    max(epoch, record.min_access_epoch),
                    max(until, expires),
                )
        self._after = max(self._after, feed.next_after)
        self._forget_expired(now)

    def _forget_expired(self, now: float) -> None:
        for sid in [sid for sid, until in self._sessions.items() if until <= now]:
            del self._sessions[sid]
        for uid in [uid for uid, (_, until) in self._epochs.items() if until <= now]:
            del self._epochs[uid]
        REVOCATIONS_HELD.labels("session").set(len(self._sessions))
        REVOCATIONS_HELD.labels("user").set(len(self._epochs))

    async def sync(self) -> None:
        """Fetches and applies what is new; on failure keeps what it has and raises
        (the periodic job counts and logs it)."""
        feed = await self._source(self._after)
        self.apply(feed)
        self._synced_at = time.monotonic()
        REVOCATIONS_LAST_SYNC.set(time.time())

    async def load(self) -> None:
        """The first sync, before the first request; on failure tokens are answered 503
        (and the process is unready) until the job's next sync succeeds."""
        try:
            await self.sync()
        except Exception as exc:
            log.warning("revocations could not be loaded from auth yet: %r", exc)

    def sync_job(self, interval_seconds: float) -> PeriodicJob:
        """The periodic job that keeps this list current (every process runs its own)."""
        return PeriodicJob(
            "revocations_sync",
            self.sync,
            interval_seconds=interval_seconds,
            jitter=0.2,
            # load() runs the first sync, before the first request.
            first_run_after=1.0,
        )


def http_revocation_source(
    client: httpx.AsyncClient, auth_url: str, *, timeout_seconds: float = 2.0
) -> RevocationSource:
    """Reads the feed from auth over HTTP with ``client`` (which carries the service credential)."""
    url = auth_url.rstrip("/") + REVOCATIONS_PATH

    async def fetch(after: int) -> RevocationFeed:
        response = await client.get(url, params={"after": after}, timeout=timeout_seconds)
        response.raise_for_status()
        return RevocationFeed.model_validate_json(response.content)

    return fetch
