"""`/internal`: lookups for other services, never routed by the gateway.

A service that misses a user in its read model (the event is still on its
way) asks here before it says "no such student". Reachable only inside the
cluster (the gateway refuses `/internal/...`; the NetworkPolicy admits only
the platform's services) and left out of the public OpenAPI document.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from auth_service.api.deps import AccountsDep
from auth_service.api.schemas import InternalUserListOut, InternalUserOut, StudentLookupIn

router = APIRouter(prefix="/internal", tags=["internal"], include_in_schema=False)


@router.get("/users/{user_id}")
async def get_user(user_id: uuid.UUID, accounts: AccountsDep) -> InternalUserOut:
    return InternalUserOut.of(await accounts.get_user(user_id))


@router.get("/students/{student_number}")
async def get_student(student_number: str, accounts: AccountsDep) -> InternalUserOut:
    return InternalUserOut.of(await accounts.get_student(student_number))


@router.post("/students/lookup")
async def lookup_students(body: StudentLookupIn, accounts: AccountsDep) -> InternalUserListOut:
    """The students among ``student_numbers`` that exist (unknown numbers are left out).

    Users carry ``version`` (as in the user events), so a caller can store the
    answer in its read model and let later events overwrite it.
    """
    users = await accounts.find_students(body.student_numbers)
    return InternalUserListOut(items=[InternalUserOut.of(u) for u in users])
