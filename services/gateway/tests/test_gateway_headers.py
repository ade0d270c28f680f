"""What crosses the gateway: identity headers dropped, forwarding headers set, request ids."""

from __future__ import annotations

import uuid

import httpx
from gateway_fakes import FakeUpstreams

SPOOFED = {
    "X-User-Id": "00000000-0000-0000-0000-000000000001",
    "X-User-Role": "admin",
    "X-User": "admin",
    "X-Auth-User": "admin",
    "X-Authenticated-Userid": "admin",
    "X-Forwarded-For": "10.0.0.1",
    "X-Forwarded-Host": "internal.example",
    "X-Forwarded-Proto": "https",
    "Forwarded": "for=10.0.0.1;proto=https",
    "X-Real-IP": "10.0.0.1",
    "X-Client-IP": "10.0.0.1",
    "X-Client-Cert": "forged",
    "X-Internal-Token": "forged",
    "X-Original-URL": "/internal/users",
    "X-HTTP-Method-Override": "DELETE",
    "True-Client-IP": "10.0.0.1",
}


def test_spoofed_identity_headers_are_dropped_and_forwarding_headers_replaced(
    client: httpx.Client, auth: dict[str, str]
) -> None:
    echoed = client.get("/api/v1/exams", headers={**auth, **SPOOFED}).json()["headers"]
    for name in SPOOFED:
        if name.lower() not in ("x-forwarded-for", "x-forwarded-proto"):
            assert name.lower() not in echoed, name
    assert echoed["x-forwarded-for"] == ["127.0.0.1"]
    assert echoed["x-forwarded-proto"] == ["http"]
    assert echoed["authorization"] == [auth["Authorization"]]


def test_hop_by_hop_headers_stop_at_the_gateway_both_ways(
    client: httpx.Client, auth: dict[str, str]
) -> None:
    response = client.get(
        "/api/v1/exams",
        headers={
            **auth,
            "Connection": "keep-alive, X-Secret-Hop",
            "X-Secret-Hop": "1",
            "TE": "trailers",
        },
    )
    echoed = response.json()["headers"]
    assert "x-secret-hop" not in echoed
    assert "te" not in echoed
    assert echoed.get("connection", ["keep-alive"]) != ["keep-alive, X-Secret-Hop"]
    # The fake upstream names X-Hop in its Connection header and says Server: fake-upstream.
    assert "x-hop" not in response.headers
    assert response.headers.get("server") != "fake-upstream"
    assert response.headers["x-upstream"] == "results"


def test_accept_encoding_reaches_the_upstream_as_the_client_sent_it(
    client: httpx.Client, auth: dict[str, str]
) -> None:
    # The gateway neither adds a coding the client did not ask for nor decodes one.
    echoed = client.get("/api/v1/exams", headers={**auth, "Accept-Encoding": ""}).json()
    assert echoed["headers"]["accept-encoding"] == [""]
    echoed = client.get("/api/v1/exams", headers={**auth, "Accept-Encoding": "br"}).json()
    assert echoed["headers"]["accept-encoding"] == ["br"]


def test_sane_request_id_is_propagated_to_the_upstream_and_echoed(
    client: httpx.Client, upstreams: FakeUpstreams, auth: dict[str, str]
) -> None:
    request_id = f"trace-{uuid.uuid4().hex}"
    response = client.get("/api/v1/notifications", headers={**auth, "X-Request-ID": request_id})
    assert response.headers["x-request-id"] == request_id
    assert response.json()["headers"]["x-request-id"] == [request_id]
    assert len(upstreams.hits_for(request_id)) == 1


def test_insane_request_id_is_replaced_everywhere(
    client: httpx.Client, auth: dict[str, str]
) -> None:
    for bad in ("has spaces in it", "x" * 200, "semi;colon"):
        response = client.get("/api/v1/exams", headers={**auth, "X-Request-ID": bad})
        fresh = response.headers["x-request-id"]
        assert fresh != bad and len(fresh) == 32
        assert response.json()["headers"]["x-request-id"] == [fresh]


def test_every_answer_has_a_request_id_matching_the_envelope(client: httpx.Client) -> None:
    for path in ("/api/v1/exams", "/nowhere", "/healthz"):
        response = client.get(path)
        assert response.headers["x-request-id"]
        if response.status_code >= 400:
            assert response.json()["error"]["request_id"] == response.headers["x-request-id"]


def test_answers_are_nosniff_without_server_and_authenticated_ones_not_stored(
    client: httpx.Client, auth: dict[str, str]
) -> None:
    proxied = client.get("/api/v1/exams", headers=auth)  # the upstream sends nosniff itself
    refused = client.get("/api/v1/exams", headers={"Authorization": "Bearer forged"})
    anonymous = client.get("/healthz")
    for response in (proxied, refused, anonymous):
        assert response.headers.get_list("x-content-type-options") == ["nosniff"]
        assert "server" not in response.headers  # neither uvicorn's nor the upstream's
    assert proxied.headers.get_list("cache-control") == ["no-store"]
    assert refused.status_code == 401
    assert refused.headers.get_list("cache-control") == ["no-store"]
    assert "cache-control" not in anonymous.headers
    # A route that chose its own caching keeps it (the JWKS's public max-age).
    cached = client.get("/api/v1/exams?cache_control=public,max-age=60", headers=auth)
    assert cached.headers.get_list("cache-control") == ["public,max-age=60"]
