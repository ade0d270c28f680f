"""JWT checks at the gateway: every refusal is a 401 before any upstream is called."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from gateway_fakes import FakeUpstreams, GatewayProcess, SigningKey, free_port


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims() -> dict[str, object]:
    now = int(time.time())
    return {
        "sub": str(uuid.uuid4()),
        "role": "admin",
        "email": "x@example.edu",
        "iss": "exam-results-auth",
        "aud": "exam-results",
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }


def _tampered(key: SigningKey) -> str:
    head, payload, signature = key.token().split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return f"{head}.{payload}.{flipped}"


def _payload_swapped(key: SigningKey) -> str:
    head, _, signature = key.token(role="student").split(".")
    forged = _b64(json.dumps({**_claims(), "role": "admin"}).encode())
    return f"{head}.{forged}.{signature}"


def _alg_none(_: SigningKey) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "key-1"}).encode())
    return f"{header}.{_b64(json.dumps(_claims()).encode())}."


def _hs256_with_public_key(key: SigningKey) -> str:
    public = key.private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "key-1"}).encode())
    body = _b64(json.dumps(_claims()).encode())
    signature = hmac.new(public, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(signature)}"


CASES: list[tuple[str, Callable[[SigningKey], str | None], str]] = [
    ("missing", lambda k: None, "AUTH_TOKEN_MISSING"),
    ("other scheme", lambda k: "Basic dXNlcjpwYXNz", "AUTH_TOKEN_MISSING"),
    ("bearer without token", lambda k: "Bearer", "AUTH_TOKEN_MISSING"),
    ("malformed", lambda k: "Bearer not-a-jwt", "AUTH_TOKEN_INVALID"),
    ("three garbage parts", lambda k: "Bearer a.b.c", "AUTH_TOKEN_INVALID"),
    ("tampered signature", lambda k: f"Bearer {_tampered(k)}", "AUTH_TOKEN_INVALID"),
    ("payload swapped", lambda k: f"Bearer {_payload_swapped(k)}", "AUTH_TOKEN_INVALID"),
    ("alg none", lambda k: f"Bearer {_alg_none(k)}", "AUTH_TOKEN_INVALID"),
    (
        "hs256 with public key",
        lambda k: f"Bearer {_hs256_with_public_key(k)}",
        "AUTH_TOKEN_INVALID",
    ),
    (
        "expired",
        lambda k: f"Bearer {k.token(iat=int(time.time()) - 4000, exp=int(time.time()) - 60)}",
        "AUTH_TOKEN_EXPIRED",
    ),
    ("wrong audience", lambda k: f"Bearer {k.token(aud='someone-else')}", "AUTH_TOKEN_INVALID"),
    ("wrong issuer", lambda k: f"Bearer {k.token(iss='https://evil')}", "AUTH_TOKEN_INVALID"),
    (
        "unknown kid",
        lambda k: f"Bearer {SigningKey('never-published').token()}",
        "AUTH_TOKEN_INVALID",
    ),
    (
        "right kid, other key",
        lambda k: f"Bearer {SigningKey('key-1').token()}",
        "AUTH_TOKEN_INVALID",
    ),
]


@pytest.mark.parametrize(("name", "make", "code"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_bad_tokens_are_refused_before_any_upstream_call(
    client: httpx.Client,
    upstreams: FakeUpstreams,
    signing_key: SigningKey,
    name: str,
    make: Callable[[SigningKey], str | None],
    code: str,
    method: str,
) -> None:
    request_id = uuid.uuid4().hex
    headers = {"X-Request-ID": request_id, "Origin": "http://localhost:5173"}
    authorization = make(signing_key)
    if authorization is not None:
        headers["Authorization"] = authorization
    response = client.request(method, "/api/v1/exams", headers=headers, json={"code": "X"})
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["request_id"] == request_id
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert upstreams.hits_for(request_id) == []


def test_token_free_calls_pass_without_a_token_but_others_do_not(client: httpx.Client) -> None:
    assert client.post("/api/v1/auth/login", json={}).status_code == 200
    assert client.post("/api/v1/auth/password/forgot", json={}).status_code == 200
    assert client.get("/api/v1/auth/login").status_code == 401
    assert client.get("/api/v1/auth/password/forgot").status_code == 401
    assert client.post("/api/v1/auth/logout", json={}).status_code == 401


def test_authorization_header_reaches_the_upstream(
    client: httpx.Client, auth: dict[str, str]
) -> None:
    echoed = client.get("/api/v1/auth/me", headers=auth).json()
    assert echoed["headers"]["authorization"] == [auth["Authorization"]]


def test_unknown_kid_is_refused_then_rotated_keys_are_picked_up(
    start_gateway: Callable[..., GatewayProcess], upstreams: FakeUpstreams, signing_key: SigningKey
) -> None:
    gateway = start_gateway(JWKS_CACHE_SECONDS="1")
    path = gateway.url + "/api/v1/exams"

    def status(key: SigningKey) -> int:
        return httpx.get(path, headers={"Authorization": f"Bearer {key.token()}"}).status_code

    assert status(signing_key) == 200  # loads the JWKS

    # A key published after the JWKS was loaded: the unknown kid triggers a refetch.
    rotated_in = SigningKey(f"rotated-{uuid.uuid4().hex[:8]}")
    upstreams.jwks_keys.append(rotated_in.jwk())
    assert status(rotated_in) == 200

    # A kid nobody published is refused...
    later = SigningKey(f"later-{uuid.uuid4().hex[:8]}")
    assert status(later) == 401
    # ...until auth publishes it; refetches for unknown kids are throttled, so
    # it is picked up when the cached JWKS expires (JWKS_CACHE_SECONDS).
    upstreams.jwks_keys.append(later.jwk())
    deadline = time.monotonic() + 5
    while status(later) != 200:
        assert time.monotonic() < deadline, "rotated key never picked up"
        time.sleep(0.2)
    assert status(signing_key) == 200


def test_jwks_unreachable_is_503_not_401(start_gateway: Callable[..., GatewayProcess]) -> None:
    # Auth (the JWKS) down before the gateway ever loaded a key: the gateway
    # cannot tell a good token from a bad one, and must not send clients to sign in.
    gateway = start_gateway(JWKS_URL=f"http://127.0.0.1:{free_port()}/.well-known/jwks.json")
    token = SigningKey("key-1").token()
    response = httpx.get(
        gateway.url + "/api/v1/exams", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert int(response.headers["retry-after"]) > 0
