"""Fixtures: fake upstreams and JWKS on real ports, and the gateway as a real process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import httpx
import pytest
from gateway_fakes import FakeUpstreams, GatewayProcess, SigningKey, free_port

OPENAPI_DOCS = {
    "auth": {
        "openapi": "3.1.0",
        "info": {"title": "auth", "version": "1"},
        "paths": {
            "/api/v1/auth/login": {"post": {"responses": {"200": {"description": "ok"}}}},
            "/api/v1/users/{user_id}": {
                "get": {
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/User"}
                                }
                            },
                        }
                    }
                }
            },
            "/internal/users/{user_id}": {"get": {"responses": {"200": {"description": "x"}}}},
            "/healthz": {"get": {"responses": {"200": {"description": "x"}}}},
        },
        "components": {
            "schemas": {
                "User": {"type": "object", "properties": {"id": {"type": "string"}}},
                "Error": {"type": "object", "properties": {"error": {"type": "object"}}},
            }
        },
    },
    "results": {
        "openapi": "3.1.0",
        "info": {"title": "results", "version": "1"},
        "paths": {
            "/api/v1/exams": {"get": {"responses": {"200": {"description": "ok"}}}},
            "/api/v1/me/results": {"get": {"responses": {"200": {"description": "ok"}}}},
            "/api/v1/exams/{exam_id}/imports": {
                "post": {"responses": {"200": {"description": "belongs to bulk"}}}
            },
            "/metrics": {"get": {"responses": {"200": {"description": "x"}}}},
        },
        "components": {
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "object"}}}}
        },
    },
    "bulk": {
        "openapi": "3.1.0",
        "info": {"title": "bulk", "version": "1"},
        "paths": {
            "/api/v1/exams/{exam_id}/imports": {
                "post": {
                    "responses": {
                        "202": {
                            "description": "job",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Error"}
                                }
                            },
                        }
                    }
                }
            },
            "/api/v1/jobs/{job_id}": {"get": {"responses": {"200": {"description": "ok"}}}},
            "/internal/jobs": {"get": {"responses": {"200": {"description": "x"}}}},
        },
        "components": {"schemas": {"Error": {"type": "string", "description": "different"}}},
    },
    "notifier": {
        "openapi": "3.1.0",
        "info": {"title": "notifier", "version": "1"},
        "paths": {"/api/v1/notifications": {"get": {"responses": {"200": {"description": "ok"}}}}},
    },
}


@pytest.fixture(scope="session")
def upstreams() -> Iterator[FakeUpstreams]:
    fakes = FakeUpstreams()
    fakes.openapi.update(OPENAPI_DOCS)
    fakes.start()
    yield fakes
    fakes.stop()


@pytest.fixture(scope="session")
def signing_key(upstreams: FakeUpstreams) -> SigningKey:
    key = SigningKey("key-1")
    upstreams.jwks_keys.append(key.jwk())
    return key


@pytest.fixture(scope="session")
def gateway(upstreams: FakeUpstreams, signing_key: SigningKey) -> Iterator[GatewayProcess]:
    process = GatewayProcess(upstreams).start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def faulty_gateway(upstreams: FakeUpstreams, signing_key: SigningKey) -> Iterator[GatewayProcess]:
    """Redis down, the notifier not built (nothing listens), a 0.5 s upstream budget."""
    process = GatewayProcess(
        upstreams,
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        NOTIFIER_URL=f"http://127.0.0.1:{free_port()}",
        UPSTREAM_TIMEOUT_SECONDS="0.5",
        READINESS_TIMEOUT_SECONDS="1",
    ).start()
    yield process
    process.stop()


@pytest.fixture
def start_gateway(
    upstreams: FakeUpstreams, signing_key: SigningKey
) -> Iterator[Callable[..., GatewayProcess]]:
    """Starts gateways with extra settings for one test; stops them after it."""
    with ExitStack() as stack:

        def start(**env: str) -> GatewayProcess:
            process = GatewayProcess(upstreams, **env).start()
            stack.callback(process.stop)
            return process

        yield start


@pytest.fixture
def client(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        yield http


@pytest.fixture
def token(signing_key: SigningKey) -> str:
    return signing_key.token()


@pytest.fixture
def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
