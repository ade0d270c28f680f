"""`/api/v1/users`: user administration (admins only)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status
from service_kit.errors import ErrorCode
from service_kit.openapi import raises
from service_kit.pagination import DEFAULT_LIMIT, Cursor, Cursors, Limit, Page

from auth_service.api.deps import AccountsDep, Admin
from auth_service.api.schemas import UserCreateIn, UserOut, UserPatchIn
from auth_service.domain.users import Role
from auth_service.usecases.accounts import NewUser, UserChanges

router = APIRouter(prefix="/api/v1/users", tags=["users"])


@router.post("", status_code=status.HTTP_201_CREATED)
@raises(ErrorCode.USER_EMAIL_TAKEN, ErrorCode.STUDENT_NUMBER_TAKEN, ErrorCode.UPSTREAM_UNAVAILABLE)
async def create_user(body: UserCreateIn, _: Admin, accounts: AccountsDep) -> UserOut:
    user = await accounts.create_user(
        NewUser(
            email=body.email,
            full_name=body.full_name,
            role=body.role,
            student_number=body.student_number,
            password=body.password,
        )
    )
    return UserOut.of(user)


def _email_key(values: list[object]) -> str:
    (email_key,) = values
    if not isinstance(email_key, str):
        raise TypeError("the key of a users cursor is the canonical email")
    return email_key


@router.get("")
async def list_users(
    _: Admin,
    accounts: AccountsDep,
    cursors: Cursors,
    role: Role | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[UserOut]:
    pages = cursors.scoped("users", role, q or None)
    after = pages.decode(cursor, _email_key)
    users, last_key = await accounts.list_users(role=role, q=q or None, after=after, limit=limit)
    return Page[UserOut](
        items=[UserOut.of(u) for u in users],
        next_cursor=pages.encode([last_key]) if last_key is not None else None,
    )


@router.get("/{user_id}")
async def get_user(user_id: uuid.UUID, _: Admin, accounts: AccountsDep) -> UserOut:
    # A malformed id is 404 like an unknown one (the kit's validation handler).
    return UserOut.of(await accounts.get_user(user_id))


@router.patch("/{user_id}")
# CONFLICT: an admin cannot deactivate or demote their own account.
@raises(ErrorCode.CONFLICT)
async def update_user(
    user_id: uuid.UUID, body: UserPatchIn, caller: Admin, accounts: AccountsDep
) -> UserOut:
    user = await accounts.update_user(
        caller.user.id,
        user_id,
        UserChanges(**body.sent_fields()),
    )
    return UserOut.of(user)
