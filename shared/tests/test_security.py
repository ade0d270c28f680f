"""Access-token verification: every forgery and mistake is a 401 with the right code."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from service_kit.errors import ErrorCode, Forbidden, Unauthorized, UpstreamUnavailable
from service_kit.security import (
    MIN_REFETCH_SECONDS,
    JwksKeyStore,
    Principal,
    TokenVerifier,
    bearer_token,
    require_role,
)

ISSUER = "test-issuer"
AUDIENCE = "test-audience"


class KeyRing:
    def __init__(self) -> None:
        self.keys: dict[str, Ed25519PrivateKey] = {}
        self.fetches = 0

    def add(self, kid: str) -> Ed25519PrivateKey:
        key = Ed25519PrivateKey.generate()
        self.keys[kid] = key
        return key

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid, key in self.keys.items():
            jwk = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
            jwk.update({"kid": kid, "use": "sig", "alg": "EdDSA"})
            out.append(jwk)
        return {"keys": out}

    async def fetch(self) -> dict[str, Any]:
        self.fetches += 1
        return self.jwks()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "sub": str(uuid.uuid4()),
        "role": "admin",
        "email": "a@example.edu",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: Ed25519PrivateKey, kid: str, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), key, algorithm="EdDSA", headers={"kid": kid})


@pytest.fixture
def ring() -> KeyRing:
    ring = KeyRing()
    ring.add("k1")
    return ring


@pytest.fixture
def verifier(ring: KeyRing) -> TokenVerifier:
    return TokenVerifier(JwksKeyStore(ring.fetch, cache_seconds=300), ISSUER, AUDIENCE)


async def expect_code(verifier: TokenVerifier, token: str, code: ErrorCode) -> None:
    with pytest.raises(Unauthorized) as caught:
        await verifier.verify(token)
    assert caught.value.code == code
    assert caught.value.headers["WWW-Authenticate"] == "Bearer"


async def test_valid_token_gives_the_principal(ring: KeyRing, verifier: TokenVerifier) -> None:
    user_id = uuid.uuid4()
    principal = await verifier.verify(sign(ring.keys["k1"], "k1", sub=str(user_id)))
    assert isinstance(principal, Principal)
    assert principal.user_id == user_id and principal.role == "admin"


async def test_tampered_payload_is_invalid(ring: KeyRing, verifier: TokenVerifier) -> None:
    header, payload, signature = sign(ring.keys["k1"], "k1").split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=="))
    data["role"] = "admin" if data["role"] != "admin" else "student"
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    await expect_code(verifier, f"{header}.{forged}.{signature}", ErrorCode.AUTH_TOKEN_INVALID)


async def test_alg_none_is_invalid(verifier: TokenVerifier) -> None:
    token = jwt.encode(claims(), None, algorithm="none", headers={"kid": "k1"})  # type: ignore[arg-type]
    await expect_code(verifier, token, ErrorCode.AUTH_TOKEN_INVALID)


async def test_hs256_signed_with_the_public_key_is_invalid(
    ring: KeyRing, verifier: TokenVerifier
) -> None:
    public_pem = (
        ring.keys["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT","kid":"k1"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=")
    import hashlib
    import hmac

    mac = hmac.new(public_pem, header + b"." + body, hashlib.sha256).digest()
    token = b".".join([header, body, base64.urlsafe_b64encode(mac).rstrip(b"=")]).decode()
    await expect_code(verifier, token, ErrorCode.AUTH_TOKEN_INVALID)


async def test_expired_token_is_expired(ring: KeyRing, verifier: TokenVerifier) -> None:
    past = int(time.time()) - 3600
    token = sign(ring.keys["k1"], "k1", iat=past - 900, exp=past)
    await expect_code(verifier, token, ErrorCode.AUTH_TOKEN_EXPIRED)


async def test_cached_token_still_expires(ring: KeyRing, verifier: TokenVerifier) -> None:
    token = sign(ring.keys["k1"], "k1", exp=int(time.time()) - 6 + 2)  # inside leeway now
    await verifier.verify(token)
    time.sleep(2.1)
    await expect_code(verifier, token, ErrorCode.AUTH_TOKEN_EXPIRED)


@pytest.mark.parametrize(
    ("override", "code"),
    [
        ({"aud": "someone-else"}, ErrorCode.AUTH_TOKEN_INVALID),
        ({"iss": "evil"}, ErrorCode.AUTH_TOKEN_INVALID),
        ({"jti": None}, ErrorCode.AUTH_TOKEN_INVALID),
        ({"sub": "not-a-uuid"}, ErrorCode.AUTH_TOKEN_INVALID),
    ],
)
async def test_wrong_claims_are_invalid(
    ring: KeyRing, verifier: TokenVerifier, override: dict[str, Any], code: ErrorCode
) -> None:
    await expect_code(verifier, sign(ring.keys["k1"], "k1", **override), code)


async def test_garbage_is_invalid(verifier: TokenVerifier) -> None:
    await expect_code(verifier, "not.a.jwt", ErrorCode.AUTH_TOKEN_INVALID)
    await expect_code(verifier, "abc", ErrorCode.AUTH_TOKEN_INVALID)


async def test_key_signed_by_a_stranger_is_invalid(verifier: TokenVerifier) -> None:
    stranger = Ed25519PrivateKey.generate()
    await expect_code(verifier, sign(stranger, "k1"), ErrorCode.AUTH_TOKEN_INVALID)


async def test_unknown_kid_refetches_once_and_picks_up_rotation(
    ring: KeyRing, verifier: TokenVerifier
) -> None:
    await verifier.verify(sign(ring.keys["k1"], "k1"))
    assert ring.fetches == 1
    new_key = ring.add("k2")  # auth rotated in a new key after our fetch
    await verifier.verify(sign(new_key, "k2"))
    assert ring.fetches == 2
    # A flood of made-up kids does not hammer the JWKS endpoint.
    for _ in range(5):
        await expect_code(verifier, sign(new_key, f"made-up-{_}"), ErrorCode.AUTH_TOKEN_INVALID)
    assert ring.fetches == 2
    assert MIN_REFETCH_SECONDS >= 1


async def test_jwks_never_fetched_is_unavailable_not_unauthorized(ring: KeyRing) -> None:
    async def down() -> dict[str, Any]:
        raise ConnectionError("auth is down")

    verifier = TokenVerifier(JwksKeyStore(down, 300), ISSUER, AUDIENCE)
    with pytest.raises(UpstreamUnavailable) as caught:
        await verifier.verify(sign(ring.keys["k1"], "k1"))
    assert caught.value.headers["Retry-After"]


class FlakyJwks:
    """A JWKS endpoint that can be taken down and counts the attempts."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
        self.up = True
        self.attempts = 0

    async def fetch(self) -> dict[str, Any]:
        self.attempts += 1
        if not self.up:
            raise ConnectionError("auth is down")
        return self.ring.jwks()


async def test_known_keys_outlive_a_jwks_outage_with_backoff(ring: KeyRing) -> None:
    endpoint = FlakyJwks(ring)
    store = JwksKeyStore(
        endpoint.fetch,
        cache_seconds=0.05,
        stale_if_error_seconds=60,
        retry_after_failure_seconds=30,
    )
    verifier = TokenVerifier(store, ISSUER, AUDIENCE)
    await verifier.verify(sign(ring.keys["k1"], "k1"))
    endpoint.up = False
    time.sleep(0.1)  # the key set is now stale and auth is down
    for _ in range(5):
        await verifier.verify(sign(ring.keys["k1"], "k1"))  # new tokens still verify
    assert endpoint.attempts == 2  # one failed refresh, then backing off


async def test_keys_stale_past_their_grace_are_unavailable(ring: KeyRing) -> None:
    endpoint = FlakyJwks(ring)
    store = JwksKeyStore(endpoint.fetch, cache_seconds=0.05, stale_if_error_seconds=0.05)
    verifier = TokenVerifier(store, ISSUER, AUDIENCE)
    token = sign(ring.keys["k1"], "k1")
    await verifier.verify(token)
    endpoint.up = False
    time.sleep(0.15)
    with pytest.raises(UpstreamUnavailable):
        await verifier.verify(token)  # even the cached verification ends with the grace


async def test_withdrawn_key_ends_its_cached_tokens(ring: KeyRing) -> None:
    store = JwksKeyStore(ring.fetch, cache_seconds=0.05)
    verifier = TokenVerifier(store, ISSUER, AUDIENCE)
    token = sign(ring.keys["k1"], "k1")
    await verifier.verify(token)
    ring.add("k2")
    del ring.keys["k1"]  # emergency rotation: k1 is withdrawn from the JWKS
    time.sleep(0.1)
    await verifier.verify(sign(ring.keys["k2"], "k2"))  # the refresh drops k1
    await expect_code(verifier, token, ErrorCode.AUTH_TOKEN_INVALID)


def test_bearer_header_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    for bad in (None, "", "Basic abc", "Bearer", "Bearer  "):
        with pytest.raises(Unauthorized) as caught:
            bearer_token(bad)
        assert caught.value.code == ErrorCode.AUTH_TOKEN_MISSING


async def test_require_role() -> None:
    dependency = require_role("admin", "examiner")
    examiner = Principal(uuid.uuid4(), "examiner", "e@x", "j", int(time.time()) + 60)
    assert await dependency(examiner) is examiner
    with pytest.raises(Forbidden):
        await dependency(Principal(uuid.uuid4(), "student", "s@x", "j", int(time.time()) + 60))


class VerifyCounter:
    """Counts the Ed25519 signature checks PyJWT makes (the cost a forgery flood aims at)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = OKPAlgorithm.verify

        def counting(algorithm: OKPAlgorithm, msg: bytes, key: Any, sig: bytes) -> bool:
            self.calls += 1
            return original(algorithm, msg, key, sig)

        monkeypatch.setattr(OKPAlgorithm, "verify", counting)


async def test_a_replayed_forgery_is_refused_without_another_verify(
    ring: KeyRing, verifier: TokenVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = VerifyCounter(monkeypatch)
    forged = sign(Ed25519PrivateKey.generate(), "k1")  # a known kid, a stranger's key
    for _ in range(5):
        await expect_code(verifier, forged, ErrorCode.AUTH_TOKEN_INVALID)
    assert counter.calls == 1
    other = sign(Ed25519PrivateKey.generate(), "k1")  # a different forgery is checked
    await expect_code(verifier, other, ErrorCode.AUTH_TOKEN_INVALID)
    assert counter.calls == 2
    valid = sign(ring.keys["k1"], "k1")  # and a genuine token still verifies
    await verifier.verify(valid)
    assert counter.calls == 3


async def test_expired_tokens_and_key_outages_are_not_remembered_as_forgeries(
    ring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = VerifyCounter(monkeypatch)
    endpoint = FlakyJwks(ring)
    endpoint.up = False
    store = JwksKeyStore(endpoint.fetch, cache_seconds=300, retry_after_failure_seconds=0)
    verifier = TokenVerifier(store, ISSUER, AUDIENCE)
    token = sign(ring.keys["k1"], "k1")
    with pytest.raises(UpstreamUnavailable):
        await verifier.verify(token)  # 503 while no key set can be loaded
    endpoint.up = True
    principal = await verifier.verify(token)  # the same token is fine once keys are back
    assert principal.role == "admin"
    past = int(time.time()) - 3600
    expired = sign(ring.keys["k1"], "k1", iat=past - 900, exp=past)
    for _ in range(2):
        await expect_code(verifier, expired, ErrorCode.AUTH_TOKEN_EXPIRED)
    assert counter.calls == 3  # the expired token is verified each time, never cached as forged
