"""JWKS publication, verification with the kit's TokenVerifier, and key rotation."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any

import jwt
import pytest
from auth_service.keys import public_key_pem, read_private_key
from auth_support import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Keys,
    Service,
    StartService,
    bearer,
    error_code,
)
from service_kit.errors import ServiceError
from service_kit.security import JwksKeyStore, TokenVerifier


def _thumbprint(jwk: Mapping[str, str]) -> str:
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x")}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _verifier_over_http(service: Service) -> TokenVerifier:
    """The kit's verifier, fed from the JWKS as any other service fetches it."""

    async def fetch() -> Mapping[str, Any]:
        response = await service.client.get("/.well-known/jwks.json")
        response.raise_for_status()
        data: Mapping[str, Any] = response.json()
        return data

    return TokenVerifier(
        JwksKeyStore(fetch, cache_seconds=60),
        service.settings.jwt_issuer,
        service.settings.jwt_audience,
    )


async def test_jwks_publishes_the_current_ed25519_key_with_its_thumbprint_as_kid(
    service: Service,
) -> None:
    response = await service.client.get("/.well-known/jwks.json")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=300"
    [key] = response.json()["keys"]
    assert key["kty"] == "OKP"
    assert key["crv"] == "Ed25519"
    assert key["alg"] == "EdDSA"
    assert key["use"] == "sig"
    assert key["kid"] == _thumbprint(key)
    assert "d" not in key  # never the private part


async def test_issued_tokens_verify_with_the_kits_token_verifier(service: Service) -> None:
    tokens = await service.tokens(ADMIN_EMAIL, ADMIN_PASSWORD)
    jwks = (await service.client.get("/.well-known/jwks.json")).json()

    principal = await _verifier_over_http(service).verify(tokens["access_token"])

    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["alg"] == "EdDSA"
    assert header["kid"] == jwks["keys"][0]["kid"]
    assert principal.role == "admin"
    assert principal.email == ADMIN_EMAIL
    assert principal.expires_at - time.time() == pytest.approx(900, abs=5)


async def test_forged_and_foreign_tokens_are_refused(service: Service, keys: Keys) -> None:
    good = await service.access_token(ADMIN_EMAIL, ADMIN_PASSWORD)
    claims = jwt.decode(good, options={"verify_signature": False})
    # Signed by a key auth does not publish, under the published kid.
    foreign = jwt.encode(
        claims,
        read_private_key(keys.previous),
        algorithm="EdDSA",
        headers={"kid": jwt.get_unverified_header(good)["kid"]},
    )
    unsigned = jwt.encode(claims, key=None, algorithm="none")  # type: ignore[arg-type]

    for token in (foreign, unsigned, good[:-4] + "AAAA"):
        response = await service.client.get("/api/v1/auth/me", headers=bearer(token))
        assert response.status_code == 401
        assert error_code(response) == "AUTH_TOKEN_INVALID"
        with pytest.raises(ServiceError):
            await _verifier_over_http(service).verify(token)


async def test_previous_key_stays_published_and_its_tokens_verify_after_rotation(
    start_service: StartService, keys: Keys, tmp_path: Any
) -> None:
    before = await start_service(jwt_signing_key_file=str(keys.previous))
    old_token = await before.access_token(ADMIN_EMAIL, ADMIN_PASSWORD)
    old_pub = tmp_path / "previous.pub.pem"
    old_pub.write_bytes(public_key_pem(read_private_key(keys.previous)))

    after = await start_service(
        jwt_signing_key_file=str(keys.current), jwt_previous_public_key_files=f" {old_pub} ,"
    )

    jwks = (await after.client.get("/.well-known/jwks.json")).json()
    kids = [k["kid"] for k in jwks["keys"]]
    assert len(kids) == 2
    assert kids[1] == jwt.get_unverified_header(old_token)["kid"]  # current key first
    new_token = await after.access_token(ADMIN_EMAIL, ADMIN_PASSWORD)
    assert jwt.get_unverified_header(new_token)["kid"] == kids[0]
    verifier = _verifier_over_http(after)
    assert (await verifier.verify(old_token)).email == ADMIN_EMAIL
    assert (await verifier.verify(new_token)).email == ADMIN_EMAIL
    me = await after.client.get("/api/v1/auth/me", headers=bearer(old_token))
    assert me.status_code == 200
