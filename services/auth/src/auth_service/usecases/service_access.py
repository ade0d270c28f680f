"""Service access: tokens for our services' internal calls, and the revocation feed.

docs/adr/0011: a service exchanges its client secret for a short-lived token
bound to one service's internal endpoints; every token verifier polls the
revocations auth recorded so a revoked access token ends everywhere at once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import timedelta

from service_kit.db import Database
from service_kit.errors import ErrorCode, Forbidden, Unauthorized
from service_kit.revocations import RevocationFeed
from service_kit.security import internal_audience

from auth_service.domain.service_clients import (
    ServiceClient,
    authenticated_client,
    issue_service_token,
)
from auth_service.domain.tokens import AccessToken, KeySet
from auth_service.store import revocations as revocations_store

# A revocation is kept in the feed this long past a token's lifetime: the
# verifiers' leeway (5 s) and clock skew between auth and them.
REVOCATION_MARGIN = timedelta(seconds=60)


class ServiceAccess:
    def __init__(
        self,
        db: Database,
        keys: KeySet,
        clients: Mapping[str, ServiceClient],
        *,
        issuer: str,
        service_token_ttl_seconds: int,
        access_token_ttl_seconds: int,
    ) -> None:
        self._db = db
        self._keys = keys
        self._clients = clients
        self._issuer = issuer
        self._ttl = service_token_ttl_seconds
        self._relevance = timedelta(seconds=access_token_ttl_seconds) + REVOCATION_MARGIN

    def issue_token(self, client_id: str, secret: str, audience: str) -> AccessToken:
        """A token for ``audience`` if the client's secret is right and it was granted it."""
        client = authenticated_client(self._clients, client_id, secret)
        if client is None:
            raise Unauthorized(
                "The client id or secret is wrong.", code=ErrorCode.AUTH_INVALID_CREDENTIALS
            )
        if audience not in {internal_audience(s) for s in client.audiences}:
            raise Forbidden(f"{client_id} may not call {audience}.")
        return issue_service_token(
            self._keys,
            issuer=self._issuer,
            client=client,
            audience=audience,
            ttl_seconds=self._ttl,
            now=int(time.time()),
        )

    async def revocations(self, after: int) -> RevocationFeed:
        """Revocations recorded from cursor ``after`` on that still end valid tokens.

        Read on the primary: a replica's lag would delay every revocation by it.
        """
        async with self._db.autocommit() as conn:
            return await revocations_store.feed(conn, after, self._relevance)
