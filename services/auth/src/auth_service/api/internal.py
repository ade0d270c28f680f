"""`/internal`: what our other services ask auth, never routed by the gateway.

Every route but the token endpoint needs a service token for auth (the kit's
:func:`internal_router`): reaching the port is not enough, and a user's
token is not one. The NetworkPolicy (only the platform's services reach this
port) stays as a second layer. Left out of the public OpenAPI document.

* ``POST /internal/oauth/token``: OAuth 2.0 client credentials (RFC 6749
  §4.4): the client id and secret by HTTP Basic, ``grant_type`` and
  ``audience`` as a form.
* ``GET /internal/revocations``: the revocation feed every token verifier polls.
* user lookups: a service that misses a user in its read model (the event is
  still on its way) asks here before it says "no such student".
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from service_kit.errors import BadRequest, ErrorCode, Unauthorized, UnsupportedMediaType
from service_kit.host import Provided
from service_kit.revocations import RevocationFeed
from service_kit.service_credentials import internal_router

from auth_service.api.deps import AccountsDep
from auth_service.api.schemas import InternalUserListOut, InternalUserOut, StudentLookupIn
from auth_service.usecases.service_access import ServiceAccess

ServiceAccessDep = Annotated[ServiceAccess, Provided(ServiceAccess)]

# The token endpoint authenticates by client secret, so it cannot sit behind
# the service-token dependency of the other routes.
token_router = APIRouter(prefix="/internal", tags=["internal"], include_in_schema=False)
router = internal_router()

_FORM = "application/x-www-form-urlencoded"
# A token request is a few short fields; anything bigger is not one.
_MAX_FORM_BYTES = 4096


class ServiceTokenOut(BaseModel):
    """RFC 6749 §5.1."""

    access_token: str
    token_type: str = "Bearer"
    expires_in: int


def _client_credentials(authorization: str | None) -> tuple[str, str]:
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        raise Unauthorized(
            "Authenticate the client with HTTP Basic.", code=ErrorCode.AUTH_INVALID_CREDENTIALS
        )
    try:
        client_id, sep, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized(code=ErrorCode.AUTH_INVALID_CREDENTIALS) from exc
    if not sep or not client_id:
        raise Unauthorized(code=ErrorCode.AUTH_INVALID_CREDENTIALS)
    return client_id, secret


@token_router.post("/oauth/token")
async def service_token(request: Request, access: ServiceAccessDep) -> ServiceTokenOut:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != _FORM:
        raise UnsupportedMediaType(f"A token request is a form ({_FORM}).")
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        raise BadRequest("The token request is too large.")
    try:
        form = parse_qs(body.decode(), strict_parsing=bool(body), max_num_fields=8)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("The token request is not a valid form.") from exc
    if form.get("grant_type") != ["client_credentials"]:
        raise BadRequest("grant_type must be client_credentials.")
    audience = form.get("audience", [])
    if len(audience) != 1:
        raise BadRequest("Name one audience (internal:<service>).")
    client_id, secret = _client_credentials(request.headers.get("authorization"))
    token = access.issue_token(client_id, secret, audience[0])
    return ServiceTokenOut(access_token=token.token, expires_in=token.expires_in)


@router.get("/revocations")
async def revocations(
    access: ServiceAccessDep, after: Annotated[int, Query(ge=0)] = 0
) -> RevocationFeed:
    return await access.revocations(after)


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
