"""Forged tokens and CORS at the gateway, with the real auth service behind it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from conftest import ALLOWED_ORIGIN, E2E, bearer
from cryptography.hazmat.primitives import serialization

pytestmark = pytest.mark.e2e


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


@pytest.fixture(scope="module")
def signing(e2e: E2E) -> tuple[Any, str]:
    with e2e.client() as client:
        jwks = client.get("/.well-known/jwks.json").json()
    pem = Path(e2e.env["JWT_SIGNING_KEY_FILE"]).read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    public = key.public_key().public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    x = b64(public).decode()
    kid = next(k["kid"] for k in jwks["keys"] if k.get("x") == x)
    return key, kid


def claims_from(admin_tokens: dict[str, str], **changes: Any) -> dict[str, Any]:
    claims = jwt.decode(admin_tokens["access_token"], options={"verify_signature": False})
    claims.update(changes)
    return claims


def assert_refused(response: httpx.Response, code: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == code
    assert response.headers["www-authenticate"].startswith("Bearer")


def get_me(e2e: E2E, token: str | None) -> httpx.Response:
    headers = bearer(token) if token is not None else {}
    with e2e.client() as client:
        return client.get("/api/v1/auth/me", headers=headers)


def test_missing_token(e2e: E2E) -> None:
    assert_refused(get_me(e2e, None), "AUTH_TOKEN_MISSING")


def test_tampered_token(e2e: E2E, admin_tokens: dict[str, str]) -> None:
    header, payload, signature = admin_tokens["access_token"].split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=="))
    data["role"] = "student"
    forged = f"{header}.{b64(json.dumps(data).encode()).decode()}.{signature}"
    assert_refused(get_me(e2e, forged), "AUTH_TOKEN_INVALID")


def test_alg_none(e2e: E2E, admin_tokens: dict[str, str], signing: tuple[Any, str]) -> None:
    _, kid = signing
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps(claims_from(admin_tokens)).encode())
    assert_refused(get_me(e2e, f"{header.decode()}.{body.decode()}."), "AUTH_TOKEN_INVALID")


def test_hs256_with_the_public_key(
    e2e: E2E, admin_tokens: dict[str, str], signing: tuple[Any, str]
) -> None:
    key, kid = signing
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps(claims_from(admin_tokens)).encode())
    mac = hmac.new(public_pem, header + b"." + body, hashlib.sha256).digest()
    token = b".".join([header, body, b64(mac)]).decode()
    assert_refused(get_me(e2e, token), "AUTH_TOKEN_INVALID")


def test_expired_token(e2e: E2E, admin_tokens: dict[str, str], signing: tuple[Any, str]) -> None:
    key, kid = signing
    past = int(time.time()) - 3600
    token = jwt.encode(
        claims_from(admin_tokens, iat=past - 900, exp=past, jti=uuid.uuid4().hex),
        key,
        algorithm="EdDSA",
        headers={"kid": kid},
    )
    assert_refused(get_me(e2e, token), "AUTH_TOKEN_EXPIRED")


def test_wrong_audience(e2e: E2E, admin_tokens: dict[str, str], signing: tuple[Any, str]) -> None:
    key, kid = signing
    token = jwt.encode(
        claims_from(admin_tokens, aud="another-app", jti=uuid.uuid4().hex),
        key,
        algorithm="EdDSA",
        headers={"kid": kid},
    )
    assert_refused(get_me(e2e, token), "AUTH_TOKEN_INVALID")


def test_a_correctly_signed_token_passes(
    e2e: E2E, admin_tokens: dict[str, str], signing: tuple[Any, str]
) -> None:
    key, kid = signing
    token = jwt.encode(
        claims_from(admin_tokens, jti=uuid.uuid4().hex),
        key,
        algorithm="EdDSA",
        headers={"kid": kid},
    )
    assert get_me(e2e, token).status_code == 200


def test_cors_allowed_origin(e2e: E2E) -> None:
    with e2e.client() as client:
        response = client.post(
            "/api/v1/auth/login",
            json={"email": "x@example.edu", "password": "whatever-password"},
            headers={"Origin": ALLOWED_ORIGIN},
        )
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "origin" in response.headers["vary"].lower()


def test_cors_refused_origin_gets_no_cors_headers(e2e: E2E) -> None:
    with e2e.client() as client:
        response = client.get("/healthz", headers={"Origin": "https://evil.example.com"})
        preflight = client.options(
            "/api/v1/auth/login",
            headers={
                "Origin": "https://evil.example.com",
                "Access-Control-Request-Method": "POST",
            },
        )
    for r in (response, preflight):
        assert not [h for h in r.headers if h.lower().startswith("access-control-allow")]


def test_cors_preflight(e2e: E2E) -> None:
    with e2e.client() as client:
        response = client.options(
            "/api/v1/exams",
            headers={
                "Origin": ALLOWED_ORIGIN,
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "PUT" in response.headers["access-control-allow-methods"]
    allowed_headers = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed_headers and "content-type" in allowed_headers
    assert int(response.headers["access-control-max-age"]) > 0
    assert response.headers.get("access-control-allow-origin") != "*"
