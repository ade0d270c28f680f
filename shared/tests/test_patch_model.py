"""PATCH bodies: fields left out stay, explicit nulls are 422 NULL_NOT_ALLOWED unless they clear."""

from __future__ import annotations

from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel, Field, ValidationError
from service_kit.app import create_app
from service_kit.patch import NULL_CLEARS, PatchModel
from service_kit.settings import KitSettings


class Part(BaseModel):
    code: str


class ThingPatch(PatchModel):
    name: str | None = Field(None, max_length=10)
    note: Annotated[str | None, NULL_CLEARS] = None
    parts: list[Part] | None = None
    active: bool | None = None


def test_sent_fields_are_exactly_what_the_client_sent_in_declaration_order() -> None:
    patch = ThingPatch.model_validate({"active": False, "parts": [{"code": "A"}], "note": None})
    assert patch.sent_fields() == {"note": None, "parts": [Part(code="A")], "active": False}
    assert ThingPatch.model_validate({}).sent_fields() == {}


def test_null_is_refused_for_every_field_not_marked_as_clearing() -> None:
    with pytest.raises(ValidationError) as caught:
        ThingPatch.model_validate({"name": None, "parts": None, "active": None, "note": None})
    assert [(e["loc"], e["type"]) for e in caught.value.errors()] == [
        (("name",), "null_not_allowed"),
        (("parts",), "null_not_allowed"),
        (("active",), "null_not_allowed"),
    ]


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="extra_forbidden"):
        ThingPatch.model_validate({"nmae": "typo"})


async def test_a_null_answers_422_with_one_detail_per_field_next_to_other_problems() -> None:
    router = APIRouter()

    @router.patch("/things/1")
    async def patch_thing(body: ThingPatch) -> dict[str, object]:
        return {"sent": sorted(body.sent_fields())}

    app = create_app(KitSettings(service_name="kit-test"), title="t", version="1", routers=[router])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://kit.test"
    ) as client:
        ok = await client.patch("/things/1", json={"note": None, "name": "x"})
        assert ok.status_code == 200 and ok.json() == {"sent": ["name", "note"]}

        bad = await client.patch("/things/1", json={"name": None, "active": "maybe"})
        assert bad.status_code == 422
        error = bad.json()["error"]
        assert error["code"] == "VALIDATION_FAILED"
        assert [(d["field"], d["code"]) for d in error["details"]] == [
            ("name", "NULL_NOT_ALLOWED"),
            ("active", "BOOL_PARSING"),
        ]
        assert "leave it out" in error["details"][0]["message"]
