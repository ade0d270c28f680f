"""`/api/v1/auth`: sign-in, tokens, the caller's own account."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Response, status
from service_kit.errors import ErrorCode
from service_kit.openapi import raises

from auth_service.api.deps import (
    AccountsDep,
    ClientAddress,
    PasswordResetsDep,
    SessionsDep,
    SignedIn,
)
from auth_service.api.schemas import (
    LoginIn,
    PasswordChangeIn,
    PasswordForgotIn,
    PasswordResetIn,
    RefreshIn,
    TokenPairOut,
    UserOut,
)
from auth_service.usecases.sessions import TokenPair

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


def _tokens(pair: TokenPair, response: Response) -> TokenPairOut:
    # RFC 6749 5.1: token responses must not be cached by the browser or a proxy.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return TokenPairOut.of(pair)


@router.post("/login")
# 503 UPSTREAM_UNAVAILABLE with Retry-After: the hashing queue is over its budget (ADR 0020).
@raises(
    ErrorCode.AUTH_INVALID_CREDENTIALS,
    ErrorCode.AUTH_RATE_LIMITED,
    ErrorCode.UPSTREAM_UNAVAILABLE,
)
async def login(
    body: LoginIn, sessions: SessionsDep, address: ClientAddress, response: Response
) -> TokenPairOut:
    return _tokens(await sessions.login(body.email, body.password, address), response)


@router.post("/refresh")
@raises(ErrorCode.AUTH_REFRESH_INVALID, ErrorCode.AUTH_REFRESH_REUSED)
async def refresh(body: RefreshIn, sessions: SessionsDep, response: Response) -> TokenPairOut:
    return _tokens(await sessions.refresh(body.refresh_token), response)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(body: RefreshIn, caller: SignedIn, sessions: SessionsDep) -> Response:
    await sessions.logout(caller.user.id, body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me")
async def me(caller: SignedIn) -> UserOut:
    return UserOut.of(caller.user)


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT)
# A wrong current password counts toward the sign-in limit of the caller's email.
@raises(ErrorCode.AUTH_RATE_LIMITED, ErrorCode.UPSTREAM_UNAVAILABLE)
async def change_password(
    body: PasswordChangeIn, caller: SignedIn, sessions: SessionsDep
) -> Response:
    await sessions.change_password(
        caller.user, caller.session_id, body.current_password, body.new_password
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/password/forgot",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    responses={202: {"description": "Accepted, whether or not the address has an account."}},
)
@raises(ErrorCode.AUTH_RATE_LIMITED)
async def forgot_password(
    body: PasswordForgotIn,
    resets: PasswordResetsDep,
    address: ClientAddress,
    background: BackgroundTasks,
) -> Response:
    email_key = await resets.admit(body.email, address)
    # After the response: whether the address has an account must not show in its timing.
    background.add_task(resets.issue, email_key)
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post("/password/reset", status_code=status.HTTP_204_NO_CONTENT)
@raises(ErrorCode.UPSTREAM_UNAVAILABLE)
async def reset_password(body: PasswordResetIn, accounts: AccountsDep) -> Response:
    await accounts.accept_invitation(body.token, body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
