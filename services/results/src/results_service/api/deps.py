"""Dependencies of the routers: the caller, their roles, and the process's resources.

Resources live on ``app.state.runtime`` (built by the lifespan in
:mod:`results_service.runtime`); routes take them through these aliases, so a
route is a few lines and tests can swap nothing but settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from service_kit.db import Database
from service_kit.security import CurrentUser, Principal, require_role
from sqlalchemy.ext.asyncio import AsyncSession

from results_service.clients.auth import StudentLookup
from results_service.read_your_writes import RecentWriters
from results_service.runtime import Runtime
from results_service.usecases.mark_entries import Actor


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_db(runtime: RuntimeDep) -> Database:
    return runtime.db


def get_recent_writers(runtime: RuntimeDep) -> RecentWriters:
    return runtime.recent_writers


def get_student_lookup(runtime: RuntimeDep) -> StudentLookup:
    return runtime.student_lookup


DB = Annotated[Database, Depends(get_db)]
Writers = Annotated[RecentWriters, Depends(get_recent_writers)]
Lookup = Annotated[StudentLookup, Depends(get_student_lookup)]

AdminUser = Annotated[Principal, Depends(require_role("admin"))]
StaffUser = Annotated[Principal, Depends(require_role("admin", "examiner"))]
AnyUser = CurrentUser


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
