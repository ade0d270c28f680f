"""What every kit-built app answers the same way: malformed ids and the answer headers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, Response
from service_kit.app import create_app
from service_kit.errors import NotFound
from service_kit.settings import KitSettings


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    router = APIRouter()

    @router.get("/things/{thing_id}")
    async def get_thing(thing_id: uuid.UUID, limit: int = 10) -> dict[str, str]:
        raise NotFound()

    @router.get("/public")
    async def public(response: Response) -> dict[str, str]:
        response.headers["Cache-Control"] = "public, max-age=300"
        return {}

    app = create_app(KitSettings(service_name="kit-test"), title="t", version="1", routers=[router])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kit.test") as client:
        yield client


@pytest.mark.parametrize("path", ["/things/not-a-uuid", "/things/not-a-uuid?limit=x", "/things/1"])
async def test_a_malformed_id_is_not_found_like_an_unknown_one(
    client: httpx.AsyncClient, path: str
) -> None:
    unknown = await client.get(f"/things/{uuid.uuid4()}")
    malformed = await client.get(path)
    for response in (unknown, malformed):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NOT_FOUND"
        assert "details" not in response.json()["error"]


async def test_every_answer_is_nosniff_and_authenticated_ones_are_not_stored(
    client: httpx.AsyncClient,
) -> None:
    anonymous = await client.get("/healthz")
    signed_in = await client.get("/healthz", headers={"Authorization": "Bearer x"})
    error = await client.get("/things/nope", headers={"Authorization": "Bearer x"})
    for response in (anonymous, signed_in, error):
        assert response.headers.get_list("x-content-type-options") == ["nosniff"]
    assert "cache-control" not in anonymous.headers
    assert signed_in.headers.get_list("cache-control") == ["no-store"]
    assert error.headers.get_list("cache-control") == ["no-store"]


async def test_a_route_that_sets_its_own_cache_control_keeps_it(client: httpx.AsyncClient) -> None:
    response = await client.get("/public", headers={"Authorization": "Bearer x"})
    assert response.headers.get_list("cache-control") == ["public, max-age=300"]
