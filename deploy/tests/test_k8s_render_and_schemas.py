"""Every overlay renders, and every custom kind in it matches its CRD's schema."""

from __future__ import annotations

import copy

import pytest
from k8s_support import CORE_GROUPS, OVERLAYS, api_group, named, render, schema_errors, schema_path


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_with_the_workspace_kubectl(overlay: str) -> None:
    docs = render(overlay)
    kinds = {d["kind"] for d in docs}
    assert {
        "Namespace",
        "Deployment",
        "Service",
        "ServiceAccount",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "ServiceMonitor",
        "Job",
        "Cluster",
        "StatefulSet",
        "RabbitmqCluster",
    } <= kinds


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_object_names_are_unique_per_kind(overlay: str) -> None:
    seen = [(d["kind"], d["metadata"]["name"]) for d in render(overlay)]
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_namespaced_object_lands_in_the_overlay_namespace(overlay: str) -> None:
    docs = render(overlay)
    (namespace,) = (d["metadata"]["name"] for d in docs if d["kind"] == "Namespace")
    strays = [
        f"{d['kind']}/{d['metadata']['name']}"
        for d in docs
        if d["kind"] != "Namespace" and d["metadata"].get("namespace") != namespace
    ]
    assert strays == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_custom_kind_has_a_schema(overlay: str) -> None:
    custom = [d for d in render(overlay) if api_group(d) not in CORE_GROUPS]
    assert custom, "expected custom kinds (Cluster, RabbitmqCluster, ServiceMonitor...)"
    missing = [f"{d['kind']} ({d['apiVersion']})" for d in custom if not schema_path(d).exists()]
    assert missing == [], "no JSON Schema in ../shared/k8s-schemas for these"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_custom_kinds_match_their_schemas_in_strict_mode(overlay: str) -> None:
    errors = [
        e for d in render(overlay) if api_group(d) not in CORE_GROUPS for e in schema_errors(d)
    ]
    assert errors == []


def test_strict_validation_refuses_an_unknown_field_at_any_depth() -> None:
    cluster = copy.deepcopy(named(render("prod"), "Cluster", "pg"))
    cluster["spec"]["instancez"] = 3
    cluster["spec"]["storage"]["sise"] = "1Gi"
    errors = schema_errors(cluster)
    assert any("instancez" in e for e in errors)
    assert any("/spec/storage" in e and "sise" in e for e in errors)


def test_strict_validation_refuses_a_wrong_type() -> None:
    monitor = copy.deepcopy(named(render("prod"), "ServiceMonitor", "auth"))
    monitor["spec"]["endpoints"][0]["interval"] = 30
    assert schema_errors(monitor)
