"""The matcher built from the routing table: every row reachable, the most specific wins,
and a new row needs no other code."""

from __future__ import annotations

import pytest
from gateway_service.routing import ROUTES, Route, RouteTable, match_route

BY_TEMPLATE = {route.path: route for route in ROUTES}


def _concrete(template: str, value: str = "x1") -> str:
    """A path the template matches, every ``{name}`` filled in."""
    return "/".join(value if s.startswith("{") else s for s in template.split("/"))


@pytest.mark.parametrize("route", ROUTES, ids=[r.path for r in ROUTES])
def test_every_row_of_the_table_is_reachable(route: Route) -> None:
    path = _concrete(route.path)
    assert match_route(path) is route
    assert match_route(path + "/") is route
    below = match_route(path + "/more/segments")
    if route.prefix:
        # This row, or a more specific one under it (``/jobs`` -> ``/jobs/{id}/{file}``).
        assert below is route or (below is not None and below.path.startswith(route.path + "/"))
    else:
        # Never this row: nothing, or a shorter prefix row above it
        # (``/notifications/stream/x`` -> ``/notifications``).
        assert below is not route
        assert below is None or (below.prefix and route.path.startswith(below.path + "/"))


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/api/v1/exams/E1/imports", "/api/v1/exams/{id}/imports"),
        ("/api/v1/exams/E1/imports/J1/", "/api/v1/exams/{id}/imports"),
        ("/api/v1/exams/E1/exports", "/api/v1/exams/{id}/exports"),
        ("/api/v1/exams/E1", "/api/v1/exams"),
        ("/api/v1/exams/imports", "/api/v1/exams"),
        ("/api/v1/exams/E1/marks/audit", "/api/v1/exams"),
        ("/api/v1/users/imports/J1", "/api/v1/users/imports"),
        ("/api/v1/users/U1", "/api/v1/users"),
        ("/api/v1/jobs", "/api/v1/jobs"),
        ("/api/v1/jobs/J1", "/api/v1/jobs"),
        ("/api/v1/jobs/J1/errors", "/api/v1/jobs/{id}/{file}"),
        ("/api/v1/jobs/J1/errors/x", "/api/v1/jobs/{id}/{file}"),
        ("/api/v1/me/results/", "/api/v1/me/results"),
    ],
)
def test_the_most_specific_row_serves_a_path(path: str, template: str) -> None:
    assert match_route(path) is BY_TEMPLATE[template]


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/",
        "/api/v1",
        "/api/v1/me",
        "/api/v1/me/other",
        "/api/v1/examsX",
        "/API/v1/exams",
        "/api/v1/exams/E1/Internal",
        "/api/v1/exams/internal/imports",
        "/.well-known/jwks.json/x",
        "/.well-known",
    ],
)
def test_paths_outside_the_table_match_nothing(path: str) -> None:
    assert match_route(path) is None


def test_a_literal_segment_beats_a_name_and_a_longer_template_beats_a_shorter_one() -> None:
    by_id = Route("/a/{id}", "one")
    stats = Route("/a/stats", "two")
    deeper = Route("/a/{id}/c", "three")
    table = RouteTable((deeper, by_id, stats))  # the order of the rows does not matter
    assert table.match("/a/stats") is stats
    assert table.match("/a/stats/x") is stats
    assert table.match("/a/other") is by_id
    assert table.match("/a/stats/c") is deeper
    assert table.match("/a/stats/c/d") is deeper
    assert table.match("/a") is None


def test_a_new_row_is_routed_without_any_other_change() -> None:
    stats = Route("/api/v1/exams/{id}/stats", "analytics")
    table = RouteTable((*ROUTES, stats))
    assert table.match("/api/v1/exams/E1/stats/daily") is stats
    for route in ROUTES:
        assert table.match(_concrete(route.path)) is route


@pytest.mark.parametrize(
    "rows",
    [
        (Route("/a/{id}", "one"), Route("/a/{name}", "two")),
        (Route("/a", "one"), Route("/a", "two")),
    ],
)
def test_rows_that_match_the_same_paths_are_refused(rows: tuple[Route, ...]) -> None:
    with pytest.raises(ValueError, match="match the same paths"):
        RouteTable(rows)


@pytest.mark.parametrize("template", ["a/b", "/", "/a//b", "/a/", "/a/x{id}", "/a/{}", "/internal"])
def test_malformed_templates_are_refused(template: str) -> None:
    with pytest.raises(ValueError):
        RouteTable((Route(template, "one"),))
