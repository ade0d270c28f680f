"""`/.well-known/jwks.json`: the public keys access tokens verify against."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

router = APIRouter(tags=["auth"])


@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> Response:
    # Built once at start (the key set only changes with a restart); verifiers
    # may cache it for max-age and refetch early on an unknown kid.
    body: bytes = request.app.state.jwks_body
    max_age: int = request.app.state.settings.jwks_max_age_seconds
    return Response(
        body,
        media_type="application/json",
        headers={"Cache-Control": f"public, max-age={max_age}"},
    )
