"""Access tokens (EdDSA JWTs), the published key set, and opaque secret tokens.

Why EdDSA, ``kid`` thumbprints and previous keys: docs/adr/0002-jwt-eddsa-and-key-rotation.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALGORITHM = "EdDSA"
# 32 random bytes: 256 bits, far beyond guessing; url-safe so it travels in JSON and links.
SECRET_TOKEN_BYTES = 32


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def public_jwk(public_key: Ed25519PublicKey) -> dict[str, str]:
    """The RFC 8037 JWK of an Ed25519 public key, with its RFC 7638 thumbprint as ``kid``."""
    x = _b64url(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw))
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": x,
        "kid": jwk_thumbprint(x),
        "use": "sig",
        "alg": ALGORITHM,
    }


def jwk_thumbprint(x: str) -> str:
    """RFC 7638 SHA-256 thumbprint of an OKP Ed25519 key with public value ``x``.

    The required members in lexicographic order, no whitespace: the kid is
    derived from the key itself, so two replicas (or a verifier) always agree
    on it and no kid registry is needed.
    """
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


@dataclass(frozen=True, slots=True)
class KeySet:
    """The current signing key and the public keys of earlier ones."""

    current: Ed25519PrivateKey
    previous: tuple[Ed25519PublicKey, ...] = ()
    # Derived once: the thumbprint (a JSON dump and a SHA-256) would otherwise
    # be recomputed for every token signed.
    current_kid: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "current_kid", public_jwk(self.current.public_key())["kid"])

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The JWKS document: the current key first, then earlier ones (no duplicates)."""
        keys: list[dict[str, str]] = []
        seen: set[str] = set()
        for public in (self.current.public_key(), *self.previous):
            jwk = public_jwk(public)
            if jwk["kid"] not in seen:
                seen.add(jwk["kid"])
                keys.append(jwk)
        return {"keys": keys}

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(
            claims, self.current, algorithm=ALGORITHM, headers={"kid": self.current_kid}
        )


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    issuer: str
    audience: str
    access_ttl_seconds: int


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    token_id: str
    expires_in: int


def issue_access_token(
    keys: KeySet,
    policy: TokenPolicy,
    *,
    user_id: uuid.UUID,
    role: str,
    email: str,
    session_id: uuid.UUID,
    access_epoch: int,
    now: int,
) -> AccessToken:
    """A signed access token; ``sid`` names the refresh family it was issued with.

    ``access_epoch`` is the user's when the token is issued: a revocation of the
    user (service_kit.revocations) ends every token with a lower one.
    """
    token_id = uuid.uuid4().hex
    claims = {
        "sub": str(user_id),
        "role": role,
        "email": email,
        "sid": str(session_id),
        "access_epoch": access_epoch,
        "iss": policy.issuer,
        "aud": policy.audience,
        "iat": now,
        "exp": now + policy.access_ttl_seconds,
        "jti": token_id,
    }
    return AccessToken(keys.sign(claims), token_id, policy.access_ttl_seconds)


def new_secret_token() -> str:
    """An opaque random token (refresh or invitation); only its digest is stored."""
    return secrets.token_urlsafe(SECRET_TOKEN_BYTES)


def token_digest(token: str) -> bytes:
    """SHA-256 of a secret token: what the database keeps and looks up.

    A plain hash suffices (no salt, no slow hash): the token has 256 bits of
    entropy, so a leaked table cannot be brute-forced back into tokens.
    """
    return hashlib.sha256(token.encode("utf-8")).digest()
