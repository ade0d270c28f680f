"""List cursors: signed, versioned, bound to their list; anything else is 400 BAD_REQUEST."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from fastapi import APIRouter, FastAPI
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from service_kit.app import create_app
from service_kit.cursors import MAX_CURSOR_LENGTH, TAG_BYTES, CursorCodec, ListCursor
from service_kit.errors import BadRequest, ErrorCode
from service_kit.pagination import DEFAULT_LIMIT, Cursor, Cursors, Limit, Page, page_of
from service_kit.settings import KitSettings

CODEC = CursorCodec("test-cursor-secret-0123456789")
EXAM = uuid.uuid4()


def _marks(subject: str | None = None) -> ListCursor:
    return CODEC.scoped("exam-marks", EXAM, subject, None)


def _pair(values: list[object]) -> tuple[datetime, uuid.UUID]:
    created_at, exam_id = values
    if not isinstance(created_at, str) or not isinstance(exam_id, str):
        raise TypeError("(created_at, id) as strings")
    return datetime.fromisoformat(created_at), uuid.UUID(exam_id)


def _raw(cursor: str) -> bytes:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


def _text(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _refused(pages: ListCursor, cursor: str) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        pages.decode(cursor, list)
    assert caught.value.code is ErrorCode.BAD_REQUEST
    assert caught.value.status == 400
    return caught.value


@given(st.lists(st.one_of(st.text(max_size=40), st.integers(-(2**63), 2**63 - 1)), max_size=4))
def test_any_key_round_trips(key: list[str | int]) -> None:
    pages = _marks("MATH")
    assert pages.decode(pages.encode(key), list) == key


def test_a_typed_key_round_trips_through_its_parser() -> None:
    pages = CODEC.scoped("exams")
    created, exam_id = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC), uuid.uuid4()
    cursor = pages.encode([created.isoformat(), str(exam_id)])
    assert pages.decode(cursor, _pair) == (created, exam_id)
    assert pages.decode(None, _pair) is None
    assert len(cursor) < 150
    assert cursor.isascii() and "=" not in cursor  # URL-safe as it stands


def test_another_version_is_refused() -> None:
    pages = _marks()
    raw = bytearray(_raw(pages.encode(["S1", "MATH"])))
    raw[0] = 2
    _refused(pages, _text(bytes(raw)))


@pytest.mark.parametrize("position", [0, 1, TAG_BYTES, TAG_BYTES + 1, -1])
def test_a_flipped_bit_anywhere_is_refused(position: int) -> None:
    pages = _marks()
    raw = bytearray(_raw(pages.encode(["S1", "MATH"])))
    raw[position] ^= 0x01
    _refused(pages, _text(bytes(raw)))


def test_a_forged_cursor_is_refused() -> None:
    """Someone who knows the format but not the secret cannot make a cursor."""
    pages = _marks()
    payload = orjson.dumps(["S0", "A"])
    for tag in (bytes(TAG_BYTES), b"\xff" * TAG_BYTES):
        _refused(pages, _text(b"\x01" + tag + payload))
    forged = CursorCodec("another-secret-0123456789").scoped("exam-marks", EXAM, None, None)
    _refused(pages, forged.encode(["S0", "A"]))


def test_a_cursor_of_another_list_or_filter_set_is_refused() -> None:
    cursor = _marks("MATH").encode(["S1", "MATH"])
    _refused(_marks("PHYS"), cursor)
    _refused(_marks(None), cursor)
    _refused(CODEC.scoped("exam-marks", uuid.uuid4(), "MATH", None), cursor)
    _refused(CODEC.scoped("exam-results", EXAM, "MATH", None), cursor)
    assert _marks("MATH").decode(cursor, list) == ["S1", "MATH"]


def test_scope_parts_cannot_be_shifted_between_name_and_filters() -> None:
    cursor = CODEC.scoped("a", "b,c").encode([1])
    _refused(CODEC.scoped("a", "b", "c"), cursor)
    _refused(CODEC.scoped("a,b", "c"), cursor)


@pytest.mark.parametrize(
    "key", [["only-one"], ["x", "y", "z"], [1, str(uuid.uuid4())], ["not a date", "nope"]]
)
def test_a_signed_key_of_the_wrong_shape_is_refused(key: list[str | int]) -> None:
    pages = CODEC.scoped("exams")
    with pytest.raises(BadRequest):
        pages.decode(pages.encode(key), _pair)


@pytest.mark.parametrize(
    "cursor", ["", "!!!", "a b", "ab+/", "abc=", "é", "\x00", "A", "AAAA", "W10", "e30"]
)
def test_garbage_is_refused(cursor: str) -> None:
    _refused(_marks(), cursor)


def test_signed_json_that_is_not_an_array_is_refused() -> None:
    pages = _marks()
    valid = _raw(pages.encode(["S1"]))
    tag = pages._tag(1, b'{"a":1}')
    _refused(pages, _text(valid[:1] + tag + b'{"a":1}'))


def test_an_over_long_cursor_is_refused_before_decoding() -> None:
    pages = _marks()
    long_key = ["x" * MAX_CURSOR_LENGTH]
    _refused(pages, pages.encode(long_key))
    _refused(pages, "A" * (MAX_CURSOR_LENGTH + 1))
    _refused(pages, "A" * 1_000_000)


def test_page_of_cuts_the_extra_row_into_a_cursor() -> None:
    pages = CODEC.scoped("numbers")
    rows = list(range(11))
    page, cursor = page_of(rows, 10, lambda n: [n], pages)
    assert list(page) == list(range(10))
    assert cursor is not None and pages.decode(cursor, list) == [9]
    assert page_of(rows[:10], 10, lambda n: [n], pages) == (rows[:10], None)


def _list_app(secret: str) -> FastAPI:
    router = APIRouter()

    @router.get("/numbers")
    async def numbers(
        cursors: Cursors, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
    ) -> Page[int]:
        pages = cursors.scoped("numbers")
        after = pages.decode(cursor, _one_int)
        rows = list(range(0 if after is None else after + 1, 120))[: limit + 1]
        page, next_cursor = page_of(rows, limit, lambda n: [n], pages)
        return Page[int](items=list(page), next_cursor=next_cursor)

    settings = KitSettings(service_name="kit-test", cursor_secret=SecretStr(secret))
    return create_app(settings, title="t", version="1", routers=[router])


def _one_int(values: list[object]) -> int:
    (n,) = values
    if not isinstance(n, int):
        raise TypeError("an int")
    return n


async def test_a_list_route_pages_with_the_apps_secret_and_refuses_bad_cursors() -> None:
    transport = httpx.ASGITransport(app=_list_app("the-apps-secret-0123456789"))
    async with httpx.AsyncClient(transport=transport, base_url="http://kit.test") as client:
        seen: list[int] = []
        cursor = None
        while True:
            params = {"limit": 50} | ({"cursor": cursor} if cursor else {})
            page = (await client.get("/numbers", params=params)).json()
            seen += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == list(range(120))

        other_secret = CursorCodec("another-secret-0123456789").scoped("numbers").encode([5])
        for bad in ("garbage!", other_secret, "A" * (MAX_CURSOR_LENGTH + 1)):
            response = await client.get("/numbers", params={"cursor": bad})
            assert response.status_code == 400, bad
            error = response.json()["error"]
            assert error["code"] == "BAD_REQUEST" and error["request_id"]
