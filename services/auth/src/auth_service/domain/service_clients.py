"""Service clients: which of our services may get tokens for which internal endpoints.

A service proves who it is with its client secret (OAuth 2.0 client
credentials, docs/adr/0011). auth keeps only the secrets' SHA-256: the secrets
are long random strings, so a plain hash cannot be brute-forced back, and
auth's configuration leaking does not hand out the services' credentials.
Several hashes per client let a secret rotate without downtime (add the new
one, roll the service, remove the old one).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from service_kit.security import SERVICE_TOKEN_USE

from auth_service.domain.tokens import AccessToken, KeySet


@dataclass(frozen=True, slots=True)
class ServiceClient:
    client_id: str
    secret_sha256: tuple[bytes, ...]
    audiences: frozenset[str]
    """The internal audiences (``internal:<service>``) this client may ask for."""


def secret_digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


def authenticated_client(
    clients: Mapping[str, ServiceClient], client_id: str, secret: str
) -> ServiceClient | None:
    """The client if ``secret`` is one of its secrets; else None (in constant time)."""
    client = clients.get(client_id)
    presented = secret_digest(secret)
    # Compared against every hash (and against a dummy for an unknown id), so
    # timing tells neither which client ids exist nor how much of a secret matched.
    known = client.secret_sha256 if client is not None else (bytes(32),)
    matched = False
    for digest in known:
        matched |= hmac.compare_digest(presented, digest)
    return client if client is not None and matched else None


def issue_service_token(
    keys: KeySet, *, issuer: str, client: ServiceClient, audience: str, ttl_seconds: int, now: int
) -> AccessToken:
    """A token that opens ``audience``'s internal endpoints to ``client``.

    ``token_use: service`` and a non-user ``sub`` keep it from ever passing as a
    user's token, and the audience keeps it to one service.
    """
    token_id = uuid.uuid4().hex
    claims = {
        "sub": f"service:{client.client_id}",
        "client_id": client.client_id,
        "token_use": SERVICE_TOKEN_USE,
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + ttl_seconds,
        "jti": token_id,
    }
    return AccessToken(keys.sign(claims), token_id, ttl_seconds)
