"""`/.well-known/jwks.json`: the public keys access tokens verify against."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from service_kit.host import Provided

from auth_service.api.deps import Settings
from auth_service.keys import PublishedKeys

router = APIRouter(tags=["auth"])


@router.get("/.well-known/jwks.json")
async def jwks(
    keys: Annotated[PublishedKeys, Provided(PublishedKeys)], settings: Settings
) -> Response:
    # Built once at start; verifiers may cache it for max-age and refetch early
    # on an unknown kid.
    return Response(
        keys.body,
        media_type="application/json",
        headers={"Cache-Control": f"public, max-age={settings.jwks_max_age_seconds}"},
    )
