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
from service_kit.messaging.inbox import purge_inbox

from auth_service.settings import AuthSettings
from auth_service.store import import_chunks as import_chunks_store
from auth_service.store import invitations as invitations_store
from auth_service.store import refresh_tokens as tokens_store
from auth_service.store import revocations as revocations_store
from auth_service.store.tables import SCHEMA

log = logging.getLogger(__name__)

KEEP_EXPIRED = timedelta(days=1)
KEEP_INVITATIONS = timedelta(days=30)
# Far past the feed's relevance (a token lifetime and a minute): a verifier
# that was away a while still gets an answer, and the table stays small.
KEEP_REVOCATIONS = timedelta(days=1)
KEEP_IMPORT_CHUNKS = timedelta(days=30)
BATCH = 5000


@dataclass(frozen=True, slots=True)
class Purged:
    tokens: int
    families: int
    invitations: int
    revocations: int
    import_chunks: int


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
    async with db.transaction() as session:
        # Import chunks and inbox ids are kept well beyond any redelivery or DLQ replay.
        chunks = await import_chunks_store.purge_processed_chunks(session, KEEP_IMPORT_CHUNKS)
        chunks += await purge_inbox(session, schema=SCHEMA, older_than=KEEP_IMPORT_CHUNKS)
    return Purged(tokens, families, invitations, revocations, chunks)


PURGE_INTERVAL_SECONDS = 3600.0


def purge_job(db: Database, settings: AuthSettings) -> PeriodicJob:
    """The hourly purge, run by one replica at a time (a lease in schema auth)."""
    # A family is only considered once all of its tokens could have expired.
    family_age = timedelta(seconds=settings.refresh_token_ttl_seconds) + KEEP_EXPIRED

    async def run() -> None:
        purged = await purge_expired(db, family_age=family_age)
        if any(
            (
                purged.tokens,
                purged.families,
                purged.invitations,
                purged.revocations,
                purged.import_chunks,
            )
        ):
            log.info(
                "purged expired sessions",
                extra={
                    "tokens": purged.tokens,
                    "families": purged.families,
                    "invitations": purged.invitations,
                    "revocations": purged.revocations,
                    "import_chunks": purged.import_chunks,
                },
            )

    return PeriodicJob(
        "purge-expired-sessions",
        run,
        interval_seconds=PURGE_INTERVAL_SECONDS,
        jitter=0.5,
        once_across_replicas=True,
    )
