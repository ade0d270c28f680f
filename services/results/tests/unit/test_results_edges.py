"""Small edges of the service: JSON numbers, detail codes, settings, contracts."""

from __future__ import annotations

import uuid
from decimal import Decimal

import orjson
import pytest
from auth_service.contracts import UserCreatedV1
from pydantic import BaseModel, ValidationError
from results_service.api.numbers import JsonDecimal, json_number
from results_service.contracts import MAX_CHUNK_ROWS, MarkImportChunkV1
from results_service.domain import ProblemCode
from results_service.messaging.user_events import UserChangedV1
from results_service.settings import ResultsSettings
from service_kit.errors import DetailCode
from service_kit.settings import DevSecretInProduction


class _Number(BaseModel):
    value: JsonDecimal


@pytest.mark.parametrize(
    ("value", "json"),
    [
        (Decimal("79.50"), "79.5"),
        (Decimal("83.00"), "83.0"),
        (Decimal("0.10"), "0.1"),
        (Decimal("12345.67"), "12345.67"),
        (Decimal("99999.99"), "99999.99"),
        (Decimal("66.665"), "66.67"),  # rounded half up at the edge, never truncated
        (Decimal("0.005"), "0.01"),
    ],
)
def test_decimals_leave_as_json_numbers_with_at_most_two_decimals(
    value: Decimal, json: str
) -> None:
    assert _Number(value=value).model_dump_json() == '{"value":' + json + "}"


def test_every_two_decimal_mark_round_trips_exactly() -> None:
    for cents in range(0, 10_000_000, 9_973):
        value = Decimal(cents).scaleb(-2)
        assert Decimal(repr(json_number(value))) == value


def test_every_problem_code_of_the_domain_is_a_catalogued_detail_code() -> None:
    # The domain keeps its own enum (it imports nothing); its codes reach clients
    # as ErrorDetail codes, so each must be in the kit's catalog.
    assert {c.value for c in ProblemCode} <= {c.value for c in DetailCode}


def test_settings_read_the_documented_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESULTS_PORT", "9102")
    monkeypatch.setenv("RESULTS_HOST", "0.0.0.0")
    monkeypatch.setenv("AUTH_URL", "http://auth.internal:8001")
    monkeypatch.setenv("RESULTS_DATABASE_REPLICA_URL", "postgresql+asyncpg://ro/db")
    settings = ResultsSettings()
    assert (settings.results_host, settings.results_port) == ("0.0.0.0", 9102)
    assert settings.auth_url == "http://auth.internal:8001"
    assert settings.database_replica_url == "postgresql+asyncpg://ro/db"
    assert settings.service_name == "results"


def test_production_refuses_development_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    with pytest.raises((DevSecretInProduction, ValidationError)):
        ResultsSettings()


def test_auths_user_events_parse_into_the_read_model_schema() -> None:
    event = UserCreatedV1(
        id=uuid.uuid4(),
        email="ann@example.edu",
        full_name="Ann Lee",
        role="student",
        student_number="S-1",
        active=False,
        created_at="2026-11-22T10:00:00Z",  # type: ignore[arg-type]
        version=3,
    )
    parsed = UserChangedV1.model_validate(orjson.loads(event.model_dump_json()))
    assert (parsed.id, parsed.student_number, parsed.active, parsed.version) == (
        event.id, "S-1", False, 3,
    )  # fmt: skip


def test_a_chunk_over_the_row_limit_fails_its_model() -> None:
    row = {"row": 2, "student_number": "S", "subject_code": "M", "status": "absent"}
    body = {
        "job_id": str(uuid.uuid4()),
        "chunk_no": 0,
        "exam_id": str(uuid.uuid4()),
        "requested_by": {"user_id": str(uuid.uuid4()), "role": "admin"},
        "rows": [row] * MAX_CHUNK_ROWS,
    }
    assert len(MarkImportChunkV1.model_validate(body).rows) == MAX_CHUNK_ROWS
    with pytest.raises(ValidationError):
        MarkImportChunkV1.model_validate(body | {"rows": [row] * (MAX_CHUNK_ROWS + 1)})
