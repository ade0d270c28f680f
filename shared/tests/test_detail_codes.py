"""Every detail code a service can answer is in the kit's catalog, with a meaning.

The services' sources are read as syntax trees (no import), so the test also
catches a code written as a bare string where the catalog member belongs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from service_kit.detail_codes import DETAIL_CATALOG, DetailCode
from service_kit.errors import ErrorDetail
from service_kit.handlers import validation_details

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(
    path
    for tree in (ROOT / "shared" / "src", *(ROOT / "services").glob("*/src"))
    for path in tree.rglob("*.py")
)
# Calls that take a detail code as their second argument or as ``code=``.
DETAIL_MAKERS = {"ErrorDetail", "EntryProblem", "DefinitionProblem"}


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _code_arguments(tree: ast.AST) -> list[ast.expr]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) in DETAIL_MAKERS:
            position = 2 if _name(node.func) == "EntryProblem" else 1
            if len(node.args) > position:
                found.append(node.args[position])
            found += [k.value for k in node.keywords if k.arg == "code"]
    return found


def test_every_detail_code_has_an_area_and_a_meaning() -> None:
    assert set(DETAIL_CATALOG) == set(DetailCode)
    for code, entry in DETAIL_CATALOG.items():
        assert code.value == code.name
        assert entry.area and entry.meaning.endswith("."), code


def test_no_service_writes_a_detail_code_as_a_bare_string() -> None:
    assert len(SOURCES) > 50
    bare = [
        f"{path.relative_to(ROOT)}:{arg.lineno}: {arg.value!r}"
        for path in SOURCES
        for arg in _code_arguments(ast.parse(path.read_text(), str(path)))
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
    ]
    assert bare == [], "use service_kit.errors.DetailCode"


def test_every_detail_code_named_in_the_sources_is_in_the_catalog() -> None:
    named = {
        (path.relative_to(ROOT), node.lineno, node.attr)
        for path in SOURCES
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Attribute) and _name(node.value) == "DetailCode"
    }
    assert named, "the scan found no DetailCode at all"
    members = [n for n in named if n[2].isupper()]  # not DetailCode.__members__ and such
    assert members
    missing = [n for n in members if n[2] not in DetailCode.__members__]
    assert missing == []


def test_a_detail_made_with_an_uncatalogued_string_fails_where_it_is_made() -> None:
    with pytest.raises(ValueError):
        ErrorDetail("name", "NAME_BAD", "bad name")  # type: ignore[arg-type]
    assert ErrorDetail("name", "REQUIRED", "x").code is DetailCode.REQUIRED  # type: ignore[arg-type]


def test_parsing_errors_map_onto_the_catalog() -> None:
    errors = [
        {"type": "missing", "loc": ("body", "name"), "msg": "Field required"},
        {
            "type": "too_long",
            "loc": ("body", "marks"),
            "msg": "List should have at most 2 items after validation, not 3",
            "ctx": {"field_type": "List", "max_length": 2, "actual_length": 3},
        },
        {"type": "url_parsing", "loc": ("body", "site"), "msg": "Input should be a valid URL"},
        {"type": "student_not_found", "loc": ("body", "x"), "msg": "custom"},
    ]
    details = validation_details(errors)
    assert [(d.field, d.code, d.message) for d in details] == [
        ("name", DetailCode.MISSING, "Field required"),
        ("marks", DetailCode.TOO_MANY_ENTRIES, "at most 2 entries a call, got 3"),
        # Not in the catalog: a catalogued code all the same, pydantic's message kept.
        ("site", DetailCode.INVALID_VALUE, "Input should be a valid URL"),
        # Parsing cannot pass for a domain rule.
        ("x", DetailCode.INVALID_VALUE, "custom"),
    ]
