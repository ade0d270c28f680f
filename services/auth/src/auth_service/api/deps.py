"""Dependencies of the routes: the use cases, the caller, the client address."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from service_kit.errors import ErrorCode, Forbidden, Unauthorized
from service_kit.host import Provided
from service_kit.openapi import raises
from service_kit.security import CurrentUser, Principal

from auth_service.api.client_address import client_address
from auth_service.domain.users import Role, User
from auth_service.settings import AuthSettings
from auth_service.usecases.accounts import Accounts
from auth_service.usecases.password_resets import PasswordResets
from auth_service.usecases.sessions import Sessions

# Every dependency here is ``async def`` although none awaits: FastAPI runs a
# plain ``def`` dependency in its threadpool, a thread handoff per request that
# cost sign-ins measurable CPU next to the Argon2 verify.
SessionsDep = Annotated[Sessions, Provided(Sessions)]
AccountsDep = Annotated[Accounts, Provided(Accounts)]
PasswordResetsDep = Annotated[PasswordResets, Provided(PasswordResets)]
Settings = Annotated[AuthSettings, Provided(AuthSettings)]


async def _client_address(request: Request, settings: Settings) -> str:
    return client_address(
        request.headers.get("x-forwarded-for"),
        request.client.host if request.client else None,
        trust_forwarded_for=settings.trust_forwarded_for,
    )


ClientAddress = Annotated[str, Depends(_client_address)]


@dataclass(frozen=True, slots=True)
class Caller:
    """The signed-in user as the database has them now, and their session (``sid``)."""

    user: User
    session_id: uuid.UUID | None


def _session_id(principal: Principal) -> uuid.UUID | None:
    if principal.session_id is None:
        return None
    try:
        return uuid.UUID(principal.session_id)
    except ValueError:
        return None


async def _signed_in(principal: CurrentUser, request: Request, accounts: AccountsDep) -> Caller:
    # auth owns the users table, so it checks the caller against it: a user
    # deactivated or demoted a minute ago loses access here at once, not when
    # their access token expires.
    user = await accounts.find_user(principal.user_id)
    if user is None or not user.active:
        raise Unauthorized()
    return Caller(user, _session_id(principal))


SignedIn = Annotated[Caller, Depends(_signed_in)]


@raises(ErrorCode.FORBIDDEN)
async def _admin(caller: SignedIn) -> Caller:
    if caller.user.role is not Role.ADMIN:
        raise Forbidden()
    return caller


Admin = Annotated[Caller, Depends(_admin)]
