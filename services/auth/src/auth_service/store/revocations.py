"""SQL for the access-token revocation feed (``auth.access_revocations``).

Rows are written in the transaction of the change that revokes (so a logout
that rolled back revokes nothing, and one that committed is always in the
feed), and read by every token verifier through ``/internal/revocations``
(service_kit.revocations explains the cursor).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from service_kit.revocations import RevocationFeed, RevocationRecord
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from auth_service.store.tables import access_revocations, users


async def revoke_sessions(
    session: AsyncSession, user_id: uuid.UUID, session_ids: Sequence[uuid.UUID], reason: str
) -> None:
    """Ends the access tokens of ``session_ids`` (refresh families) of ``user_id``."""
    if session_ids:
        await session.execute(
            insert(access_revocations),
            [{"user_id": user_id, "session_id": sid, "reason": reason} for sid in session_ids],
        )


async def raise_access_epoch(session: AsyncSession, user_id: uuid.UUID, reason: str) -> int:
    """Ends every access token of the user issued until now; returns the new epoch.

    Tokens issued from now on carry the new epoch, so they are not caught (a
    user whose role changed refreshes and goes on with the new role).
    """
    epoch: int = (
        await session.execute(
            update(users)
            .where(users.c.id == user_id)
            .values(access_epoch=users.c.access_epoch + 1)
            .returning(users.c.access_epoch)
        )
    ).scalar_one()
    await session.execute(
        insert(access_revocations).values(user_id=user_id, min_access_epoch=epoch, reason=reason)
    )
    return epoch


# One statement, one snapshot: the rows, and as the next cursor the oldest
# transaction still running when the snapshot was taken. Every transaction
# that commits after it has an id at least that high, so asking for
# ``xact_id >= cursor`` next time cannot miss one; rows read twice are
# harmless. (A LEFT JOIN, so the cursor comes back when there are no rows.)
_FEED = text(
    """
    SELECT snapshot.next_after, r.seq, r.user_id, r.session_id, r.min_access_epoch,
           r.created_at + make_interval(secs => :relevance) AS expires_at
    FROM (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS next_after) snapshot
    LEFT JOIN auth.access_revocations r
      ON r.xact_id >= :after AND r.created_at > now() - make_interval(secs => :relevance)
    ORDER BY r.seq
    """
)


async def feed(conn: AsyncConnection, after: int, relevance: timedelta) -> RevocationFeed:
    """Revocations written by transactions from ``after`` on, still within ``relevance``."""
    rows = (
        await conn.execute(_FEED, {"after": after, "relevance": relevance.total_seconds()})
    ).all()
    records = [
        RevocationRecord(
            seq=row.seq,
            user_id=row.user_id,
            session_id=row.session_id,
            min_access_epoch=row.min_access_epoch,
            expires_at=row.expires_at,
        )
        for row in rows
        if row.seq is not None
    ]
    # Never move the cursor back: ``after`` may come from another replica's later read.
    return RevocationFeed(revocations=records, next_after=max(after, int(rows[0].next_after)))


async def purge_revocations(session: AsyncSession, older_than: timedelta, limit: int) -> int:
    """Deletes up to ``limit`` rows older than ``older_than`` (no token they end is valid)."""
    doomed = (
        select(access_revocations.c.seq)
        .where(access_revocations.c.created_at < func.now() - older_than)
        .order_by(access_revocations.c.seq)
        .limit(limit)
        .scalar_subquery()
    )
    result = await session.execute(
        delete(access_revocations).where(access_revocations.c.seq.in_(doomed))
    )
    return int(getattr(result, "rowcount", 0))
