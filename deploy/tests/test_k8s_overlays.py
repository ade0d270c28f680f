"""dev and prod differ where intended: replicas, budgets, backing sizes, settings."""

from __future__ import annotations

import pytest
import yaml
from k8s_support import (
    IMAGE_REPO,
    K8S,
    OVERLAYS,
    Doc,
    all_containers,
    env_value,
    full_env,
    named,
    of_kind,
    pod_template,
    render,
    service_deployments,
    service_of,
    workloads,
)

# Deployments, each with its own HPA and PodDisruptionBudget.
SERVICES = ("gateway", "auth", "results", "bulk", "bulk-worker", "notifier", "notifier-worker")
# Services that read only the primary (notifier: an inbox is read right after it
# is marked; its settings say the replica is unused), so get no replica URL.
PRIMARY_ONLY = {"notifier"}


def _hpa(overlay: str, name: str) -> tuple[int, int]:
    spec = named(render(overlay), "HorizontalPodAutoscaler", name)["spec"]
    return spec["minReplicas"], spec["maxReplicas"]


@pytest.mark.parametrize("service", SERVICES)
def test_dev_runs_one_pod_and_prod_at_least_three_with_room_to_scale(service: str) -> None:
    dev_min, dev_max = _hpa("dev", service)
    prod_min, prod_max = _hpa("prod", service)
    assert dev_min == 1 and dev_max <= 2
    assert prod_min >= 3 and prod_max > prod_min


@pytest.mark.parametrize("service", SERVICES)
def test_prod_budgets_keep_a_share_available_and_dev_allows_one_down(service: str) -> None:
    prod = named(render("prod"), "PodDisruptionBudget", service)["spec"]
    dev = named(render("dev"), "PodDisruptionBudget", service)["spec"]
    assert "minAvailable" in prod and "maxUnavailable" not in prod
    # Whatever the HPA does, a budget must let one pod go, or drains hang.
    min_pods = _hpa("prod", service)[0]
    share = prod["minAvailable"]
    keep = -(-min_pods * int(share.rstrip("%")) // 100) if isinstance(share, str) else share
    assert 1 <= keep < min_pods
    assert dev == {**dev, "maxUnavailable": 1}


def test_backing_services_run_three_nodes_in_prod_and_one_in_dev() -> None:
    for overlay, count in (("prod", 3), ("dev", 1)):
        docs = render(overlay)
        assert named(docs, "Cluster", "pg")["spec"]["instances"] == count
        assert named(docs, "StatefulSet", "redis")["spec"]["replicas"] == count
        assert named(docs, "RabbitmqCluster", "rabbitmq")["spec"]["replicas"] == count


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_sentinels_listed_and_quorum_match_the_redis_pods(overlay: str) -> None:
    docs = render(overlay)
    pods = named(docs, "StatefulSet", "redis")["spec"]["replicas"]
    (config,) = (
        c for c in pod_template(named(docs, "StatefulSet", "redis"))["spec"]["initContainers"]
    )
    quorum = int(env_value(config, "SENTINEL_QUORUM") or 0)
    assert pods // 2 < quorum <= pods, "a quorum must be a majority of the sentinels"
    assert (
        env_value(config, "SENTINEL_MASTER")
        == named(docs, "ConfigMap", _platform(docs))["data"]["REDIS_SENTINEL_MASTER"]
    )
    sentinels = named(docs, "ConfigMap", _platform(docs))["data"]["REDIS_SENTINELS"].split(",")
    assert len(sentinels) == pods


def _platform(docs: tuple[Doc, ...]) -> str:
    (name,) = (
        str(c["metadata"]["name"])
        for c in of_kind(docs, "ConfigMap")
        if c["metadata"]["name"].startswith("platform-config")
    )
    return name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_read_replica_urls_exist_exactly_when_postgres_has_replicas(overlay: str) -> None:
    docs = render(overlay)
    replicas = named(docs, "Cluster", "pg")["spec"]["instances"] - 1
    for workload in workloads(docs, ("Deployment", "Job")):
        for container in all_containers(pod_template(workload)["spec"]):
            env = full_env(docs, container)
            if "DATABASE_URL" not in env or service_of(container) in PRIMARY_ONLY:
                continue
            urls = [v for k, v in env.items() if k.endswith("DATABASE_REPLICA_URL")]
            if replicas:
                assert len(urls) == 1 and "@pg-ro:" in urls[0], workload["metadata"]["name"]
            else:
                assert urls == [], workload["metadata"]["name"]


def test_environment_is_production_in_prod_and_development_in_dev() -> None:
    for overlay, expected in (("prod", "production"), ("dev", "development")):
        docs = render(overlay)
        for deployment in service_deployments(docs):
            for container in pod_template(deployment)["spec"]["containers"]:
                assert full_env(docs, container)["ENVIRONMENT"] == expected


def test_prod_allows_only_https_browser_origins() -> None:
    docs = render("prod")
    container = pod_template(named(docs, "Deployment", "gateway"))["spec"]["containers"][0]
    origins = full_env(docs, container)["CORS_ALLOW_ORIGINS"].split(",")
    assert origins and all(o.startswith("https://") for o in origins)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_pins_every_service_image_it_runs(overlay: str) -> None:
    """A release is one `newTag` line per service in the overlay's kustomization."""
    kustomization = yaml.safe_load((K8S / "overlays" / overlay / "kustomization.yaml").read_text())
    pinned = {i["name"]: i["newTag"] for i in kustomization["images"]}
    for workload in workloads(render(overlay)):
        for container in all_containers(pod_template(workload)["spec"]):
            service = service_of(container)
            if service:
                assert container["image"] == f"{IMAGE_REPO}{service}:{pinned[IMAGE_REPO + service]}"
