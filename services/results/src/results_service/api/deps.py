"""Dependencies of the routers: the caller, their roles, and the service's components.

Components are provided by the service host (:mod:`results_service.main`'s
``wire``); a route names what it needs through these aliases, so a route is a
few lines and tests swap nothing but settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends
from service_kit.db import Database
from service_kit.host import Provided
from service_kit.security import CurrentUser, Principal, require_role
from sqlalchemy.ext.asyncio import AsyncSession

from results_service.cache import ResultsCache
from results_service.clients.auth import StudentLookup
from results_service.generation.runner import GenerationRunner
from results_service.read_your_writes import RecentWriters
from results_service.usecases.mark_entries import Actor

DB = Annotated[Database, Provided(Database)]
Writers = Annotated[RecentWriters, Provided(RecentWriters)]
Lookup = Annotated[StudentLookup, Provided(StudentLookup)]
Cache = Annotated[ResultsCache, Provided(ResultsCache)]
Runner = Annotated[GenerationRunner, Provided(GenerationRunner)]

AdminUser = Annotated[Principal, Depends(require_role("admin"))]
StaffUser = Annotated[Principal, Depends(require_role("admin", "examiner"))]


def actor_of(principal: Principal) -> Actor:
    return Actor(user_id=principal.user_id, role=principal.role)


async def read_session(
    principal: CurrentUser, db: DB, writers: Writers
) -> AsyncIterator[AsyncSession]:
    """A session for a read: the replica, unless the caller wrote a moment ago.

    Without a replica every read is on the primary anyway, so Redis is not asked.
    """
    fresh = db.replica is None or await writers.must_read_fresh(principal.user_id)
    async with db.read_session(fresh=fresh) as session:
        yield session


ReadSession = Annotated[AsyncSession, Depends(read_session)]
