"""Hourly purge of what can no longer be used: long-expired refresh tokens, the families
they leave empty, and long-expired invitations.

Every replica runs it; the deletes are idempotent and batched, so replicas
racing each other only repeat a cheap indexed query. Tokens are kept for a day
past expiry (``KEEP_EXPIRED``), so a copy presented just after expiry still
finds its row; rotated tokens that are still valid are never purged, or their
reuse would no longer be detected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from datetime import timedelta

from service_kit.db import Database
from sqlalchemy.exc import SQLAlchemyError

from auth_service.store import invitations as invitations_store
from auth_service.store import refresh_tokens as tokens_store

log = logging.getLogger(__name__)

KEEP_EXPIRED = timedelta(days=1)
KEEP_INVITATIONS = timedelta(days=30)
BATCH = 5000


@dataclass(frozen=True, slots=True)
class Purged:
    tokens: int
    families: int
    invitations: int


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
    return Purged(tokens, families, invitations)


class PeriodicPurge:
    """Runs :func:`purge_expired` every ``interval_seconds`` (jittered) in a background task."""

    def __init__(
        self, db: Database, *, refresh_ttl_seconds: int, interval_seconds: float = 3600.0
    ) -> None:
        self._db = db
        # A family is only considered once all of its tokens could have expired.
        self._family_age = timedelta(seconds=refresh_ttl_seconds) + KEEP_EXPIRED
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="auth-purge")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            # Jitter spreads the replicas' passes instead of running them in lockstep.
            await asyncio.sleep(self._interval * random.uniform(0.5, 1.5))
            try:
                purged = await purge_expired(self._db, family_age=self._family_age)
            except SQLAlchemyError as exc:
                log.warning("purge skipped: database unavailable: %r", exc)
                continue
            if purged.tokens or purged.families or purged.invitations:
                log.info(
                    "purged expired sessions",
                    extra={
                        "tokens": purged.tokens,
                        "families": purged.families,
                        "invitations": purged.invitations,
                    },
                )
