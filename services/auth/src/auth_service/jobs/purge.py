"""Hourly purge of what can no longer be used: long-expired refresh tokens, the families
they leave empty, long-expired invitations, and revocations older than any token
they could end.

One replica at a time runs it (a kit periodic job with a lease); the deletes
are idempotent and batched anyway, so a repeated pass only costs a cheap
indexed query. Tokens are kept for a day
past expiry (``KEEP_EXPIRED``), so a copy presented just after expiry still
finds its row; rotated tokens that are still valid are never purged, or their
reuse would no longer be detected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from service_kit.db import Database
from service_kit.jobs import PeriodicJob

from auth_service.settings import AuthSettings
from auth_service.store import invitations as invitations_store
from auth_service.store import refresh_tokens as tokens_store
from auth_service.store import revocations as revocations_store

log = logging.getLogger(__name__)

KEEP_EXPIRED = timedelta(days=1)
KEEP_INVITATIONS = timedelta(days=30)
# Far past the feed's relevance (a token lifetime and a minute): a verifier
# that was away a while still gets an answer, and the table stays small.
KEEP_REVOCATIONS = timedelta(days=1)
BATCH = 5000


@dataclass(frozen=True, slots=True)
class Purged:
    tokens: int
    families: int
    invitations: int
    revocations: int


async def purge_expired(db: Database, *, family_age: timedelta) -> Purged:
    """One full pass, in batches (short transactions, short locks)."""
    tokens = families = 0
    while True:
        async with db.transaction() as session:
            n = await tokens_store.purge_expired_tokens(session, KEEP_EXPIRED, BATCH)
        tokens += n
        if n < BATCH:
            break
    while True:
        async with db.transaction() as session:
            n = await tokens_store.purge_empty_families(session, family_age, BATCH)
        families += n
        if n < BATCH:
            break
    async with db.transaction() as session:
        invitations = await invitations_store.purge_expired_invitations(session, KEEP_INVITATIONS)
    revocations = 0
    while True:
        async with db.transaction() as session:
            n = await revocations_store.purge_revocations(session, KEEP_REVOCATIONS, BATCH)
        revocations += n
        if n < BATCH:
            break
    return Purged(tokens, families, invitations, revocations)


PURGE_INTERVAL_SECONDS = 3600.0


def purge_job(db: Database, settings: AuthSettings) -> PeriodicJob:
    """The hourly purge, run by one replica at a time (a lease in schema auth)."""
    # A family is only considered once all of its tokens could have expired.
    family_age = timedelta(seconds=settings.refresh_token_ttl_seconds) + KEEP_EXPIRED

    async def run() -> None:
        purged = await purge_expired(db, family_age=family_age)
        if purged.tokens or purged.families or purged.invitations or purged.revocations:
            log.info(
                "purged expired sessions",
                extra={
                    "tokens": purged.tokens,
                    "families": purged.families,
                    "invitations": purged.invitations,
                    "revocations": purged.revocations,
                },
            )

    return PeriodicJob(
        "purge-expired-sessions",
        run,
        interval_seconds=PURGE_INTERVAL_SECONDS,
        jitter=0.5,
        once_across_replicas=True,
    )
