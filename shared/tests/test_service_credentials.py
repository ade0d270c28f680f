"""Service credentials: tokens for internal calls, and the internal router (docs/adr/0011)."""

from __future__ import annotations

import asyncio
import base64
import uuid

import httpx
import pytest
from fastapi import FastAPI
from service_kit.errors import Unauthorized
from service_kit.handlers import install_error_handlers
from service_kit.security import JwksKeyStore, ServiceCaller, TokenVerifier
from service_kit.service_credentials import (
    CurrentServiceCaller,
    ServiceTokens,
    ServiceTokenUnavailable,
    internal_router,
)
from test_security import AUDIENCE, ISSUER, KeyRing, sign


def service_claims(client_id: str = "bulk", audience: str = "internal:results") -> dict[str, str]:
    return {
        "sub": f"service:{client_id}",
        "client_id": client_id,
        "token_use": "service",
        "aud": audience,
        "role": None,  # type: ignore[dict-item]
        "email": None,  # type: ignore[dict-item]
    }


@pytest.fixture
def ring() -> KeyRing:
    ring = KeyRing()
    ring.add("k1")
    return ring


@pytest.fixture
def verifier(ring: KeyRing) -> TokenVerifier:
    return TokenVerifier(JwksKeyStore(ring.fetch, cache_seconds=300), ISSUER, AUDIENCE)


async def test_a_service_token_names_its_client(ring: KeyRing, verifier: TokenVerifier) -> None:
    token = sign(ring.keys["k1"], "k1", **service_claims())

    caller = await verifier.verify_service(token, "internal:results")

    assert caller == ServiceCaller("bulk")
    assert await verifier.verify_service(token, "internal:results") == caller  # cached


async def test_a_service_token_opens_only_its_audience(
    ring: KeyRing, verifier: TokenVerifier
) -> None:
    token = sign(ring.keys["k1"], "k1", **service_claims(audience="internal:auth"))

    with pytest.raises(Unauthorized):
        await verifier.verify_service(token, "internal:results")


async def test_a_users_token_is_never_a_service_token(
    ring: KeyRing, verifier: TokenVerifier
) -> None:
    users = sign(ring.keys["k1"], "k1")
    # Even one minted with the internal audience, but no token_use claim:
    internal_aud = sign(ring.keys["k1"], "k1", aud="internal:results")

    for token in (users, internal_aud):
        with pytest.raises(Unauthorized):
            await verifier.verify_service(token, "internal:results")


async def test_a_service_token_is_never_a_users_token(
    ring: KeyRing, verifier: TokenVerifier
) -> None:
    # Even one minted with the users' audience and a user-like subject.
    token = sign(
        ring.keys["k1"], "k1", **{**service_claims(audience=AUDIENCE), "sub": str(uuid.uuid4())}
    )

    with pytest.raises(Unauthorized):
        await verifier.verify(token)


async def test_a_forged_service_token_is_refused(verifier: TokenVerifier) -> None:
    other = KeyRing()
    other.add("k1")  # same kid, another key
    forged = sign(other.keys["k1"], "k1", **service_claims())

    with pytest.raises(Unauthorized):
        await verifier.verify_service(forged, "internal:results")


async def test_the_internal_router_requires_a_service_token_for_this_service(
    ring: KeyRing, verifier: TokenVerifier
) -> None:
    router = internal_router()

    @router.get("/who")
    async def who(caller: CurrentServiceCaller) -> dict[str, str]:
        return {"client": caller.client_id}

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    app.state.token_verifier = verifier
    app.state.internal_audience = "internal:results"
    tokens = {
        "service": sign(ring.keys["k1"], "k1", **service_claims()),
        "other service": sign(ring.keys["k1"], "k1", **service_claims(audience="internal:auth")),
        "user": sign(ring.keys["k1"], "k1"),
    }
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://x"
    ) as client:
        answers = {
            name: await client.get("/internal/who", headers={"Authorization": f"Bearer {t}"})
            for name, t in tokens.items()
        }
        anonymous = await client.get("/internal/who")

    assert answers["service"].json() == {"client": "bulk"}
    assert answers["other service"].status_code == 401
    assert answers["user"].status_code == 401
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "AUTH_TOKEN_MISSING"
    assert "/internal/who" not in app.openapi()["paths"]


class FakeAuth:
    """auth's token endpoint and a service behind a credential, in one mock transport."""

    def __init__(self) -> None:
        self.issued: list[str] = []
        self.token_requests: list[httpx.Request] = []
        self.refuse_clients = False
        self.reject_tokens: set[str] = set()

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/internal/oauth/token":
            self.token_requests.append(request)
            if self.refuse_clients:
                return httpx.Response(401, json={"error": {"code": "AUTH_INVALID_CREDENTIALS"}})
            token = f"t{len(self.issued)}"
            self.issued.append(token)
            return httpx.Response(200, json={"access_token": token, "expires_in": 300})
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.issued or token in self.reject_tokens:
            return httpx.Response(401)
        return httpx.Response(200, json={"token": token})


@pytest.fixture
def auth() -> FakeAuth:
    return FakeAuth()


@pytest.fixture
def tokens(auth: FakeAuth) -> ServiceTokens:
    return ServiceTokens(
        "http://auth.test",
        "results",
        "s3cret-of-results",
        transport=httpx.MockTransport(auth.handler),
    )


async def test_tokens_are_fetched_once_per_audience_and_reused(
    auth: FakeAuth, tokens: ServiceTokens
) -> None:
    transport = httpx.MockTransport(auth.handler)
    async with httpx.AsyncClient(transport=transport, auth=tokens.auth("auth")) as client:
        answers = await asyncio.gather(*(client.get("http://auth.test/x") for _ in range(20)))

    assert {a.status_code for a in answers} == {200}
    assert len(auth.token_requests) == 1
    request = auth.token_requests[0]
    assert (
        request.headers["authorization"]
        == "Basic " + base64.b64encode(b"results:s3cret-of-results").decode()
    )
    assert request.content == b"grant_type=client_credentials&audience=internal%3Aauth"
    await tokens.aclose()


async def test_a_refused_token_is_renewed_once(auth: FakeAuth, tokens: ServiceTokens) -> None:
    transport = httpx.MockTransport(auth.handler)
    async with httpx.AsyncClient(transport=transport, auth=tokens.auth("auth")) as client:
        first = await client.get("http://auth.test/x")
        auth.reject_tokens.add(first.json()["token"])  # e.g. auth rotated its key
        second = await client.get("http://auth.test/x")

    assert second.status_code == 200
    assert second.json()["token"] != first.json()["token"]
    assert len(auth.token_requests) == 2


async def test_a_refused_credential_is_an_http_error(auth: FakeAuth, tokens: ServiceTokens) -> None:
    """Callers that map HTTP failures to 503 or a retry handle it with no new branch."""
    auth.refuse_clients = True
    transport = httpx.MockTransport(auth.handler)
    async with httpx.AsyncClient(transport=transport, auth=tokens.auth("auth")) as client:
        with pytest.raises(ServiceTokenUnavailable) as caught:
            await client.get("http://auth.test/x")

    assert isinstance(caught.value, httpx.HTTPError)
    assert "s3cret" not in str(caught.value)


async def test_an_unreachable_auth_is_an_http_error() -> None:
    def down(_: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    tokens = ServiceTokens(
        "http://auth.test", "results", "s3cret", transport=httpx.MockTransport(down)
    )

    with pytest.raises(httpx.HTTPError):
        await tokens.token("internal:auth")
