"""Writing auth's events to the outbox (schemas in :mod:`auth_service.contracts`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TypeVar

from service_kit.messaging.outbox import add_event
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.contracts import (
    UserCreatedV1,
    UserData,
    UserInvitedV1,
    UserPasswordResetRequestedV1,
    UserUpdatedV1,
)
from auth_service.domain.users import User

_Payload = TypeVar("_Payload", bound=UserData)


def _payload(model: type[_Payload], user: User, **extra: object) -> _Payload:
    return model.model_validate(
        {
            "id": user.id,
            "email": user.email,
            "full_name": user.full_name,
            "role": user.role.value,
            "student_number": user.student_number,
            "active": user.active,
            "created_at": user.created_at,
            "version": user.version,
            **extra,
        }
    )


async def user_created(session: AsyncSession, user: User) -> uuid.UUID:
    return await add_event(session, _payload(UserCreatedV1, user))


async def user_updated(session: AsyncSession, user: User) -> uuid.UUID:
    return await add_event(session, _payload(UserUpdatedV1, user))


async def user_invited(
    session: AsyncSession, user: User, token: str, expires_at: datetime
) -> uuid.UUID:
    payload = _payload(UserInvitedV1, user, token=token, expires_at=expires_at)
    return await add_event(session, payload)


async def user_password_reset_requested(
    session: AsyncSession, user: User, token: str, expires_at: datetime
) -> uuid.UUID:
    payload = _payload(UserPasswordResetRequestedV1, user, token=token, expires_at=expires_at)
    return await add_event(session, payload)
