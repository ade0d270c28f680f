"""Policy of every workload: resources, restricted security, probes, rollout, images."""

from __future__ import annotations

import pytest
from k8s_policy import (
    image_problems,
    probe_problems,
    resources_problems,
    rollout_problems,
    secret_literal_problems,
    security_problems,
    service_probe_paths_problems,
)
from k8s_support import OVERLAYS, of_kind, render, service_deployments, workloads


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_cpu_and_memory_requests_and_limits(overlay: str) -> None:
    assert [p for w in workloads(render(overlay)) for p in resources_problems(w)] == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_restricted_non_root_with_a_read_only_root(overlay: str) -> None:
    assert [p for w in workloads(render(overlay)) for p in security_problems(w)] == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_long_running_containers_have_startup_readiness_and_liveness_probes(overlay: str) -> None:
    docs = render(overlay)
    problems = [
        p for w in workloads(docs, ("Deployment", "StatefulSet")) for p in probe_problems(w)
    ]
    assert problems == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_probe_healthz_for_life_and_readyz_for_readiness(overlay: str) -> None:
    docs = render(overlay)
    assert [p for d in service_deployments(docs) for p in service_probe_paths_problems(d)] == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_deployments_roll_without_unavailability_and_stop_gracefully(overlay: str) -> None:
    docs = render(overlay)
    deployments = service_deployments(docs)
    assert {d["metadata"]["name"] for d in deployments} >= {
        "gateway",
        "auth",
        "results",
        "bulk",
        "bulk-worker",
        "notifier",
        "notifier-worker",
    }
    assert [p for d in deployments for p in rollout_problems(d)] == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_pinned_and_never_latest(overlay: str) -> None:
    assert [p for w in workloads(render(overlay)) for p in image_problems(w)] == []


def test_prod_overlay_has_no_secret_values() -> None:
    docs = render("prod")
    assert secret_literal_problems(docs) == []
    assert of_kind(docs, "Secret") == [], "prod references Secrets; it never generates them"
