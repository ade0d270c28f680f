"""Who may talk to whom: default deny, the gateway in front, backing services by label.

NetworkPolicy is L4. It admits results to auth's port 8001, not to a path: that
/internal/... is never reachable from outside rests on the gateway's routing
table (tested in services/gateway), and on no one but the services below
reaching the services' ports at all.
"""

from __future__ import annotations

import pytest
from k8s_support import (
    OVERLAYS,
    Doc,
    label_selector_matches,
    of_kind,
    pod_template,
    render,
    workloads,
)

NAME_KEYS = ("app.kubernetes.io/name", "cnpg.io/cluster", "k8s-app")


def _peer(peer: Doc) -> str:
    """A short name: `auth`, `pg`, `monitoring/prometheus`, `ingress-nginx/*`, or the labels."""
    pods = peer.get("podSelector", {}).get("matchLabels", {})
    pod = next((pods[k] for k in NAME_KEYS if k in pods), None)
    if pod is None:
        pod = ",".join(f"{k}={v}" for k, v in sorted(pods.items())) or "*"
    if "namespaceSelector" in peer:
        namespace = (
            peer["namespaceSelector"].get("matchLabels", {}).get("kubernetes.io/metadata.name", "?")
        )
        return f"{namespace}/{pod}"
    return pod


def _rules(docs: tuple[Doc, ...], labels: dict[str, str], direction: str) -> set[str]:
    """`peer:port` for every rule of every policy that selects a pod with these labels."""
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    found = set()
    for policy in of_kind(docs, "NetworkPolicy"):
        spec = policy["spec"]
        if direction not in spec.get("policyTypes", []):
            continue
        if not label_selector_matches(spec["podSelector"], labels):
            continue
        for rule in spec.get(key, []):
            peers = [_peer(p) for p in rule.get(peers_key, [])] or ["anywhere"]
            ports = [str(p.get("port", "any")) for p in rule.get("ports", [])] or ["any"]
            found |= {f"{peer}:{port}" for peer in peers for port in ports}
    return found


def _labels(docs: tuple[Doc, ...], name: str) -> dict[str, str]:
    (workload,) = (w for w in workloads(docs) if w["metadata"]["name"] == name)
    labels: dict[str, str] = pod_template(workload)["metadata"]["labels"]
    return labels


PROMETHEUS = "monitoring/prometheus"
DNS = "kube-system/kube-dns:53"
BACKING = {"pg:5432", "redis:6379", "redis:26379", "rabbitmq:5672"}

# Only the gateway reaches the services' HTTP ports, plus the internal calls
# of DESIGN.md: results -> auth (/internal lookups, JWKS), bulk -> results
# (/internal export stream), bulk and notifier -> auth (JWKS). Prometheus
# scrapes; the ingress controller reaches the gateway only.
EXPECTED_INGRESS = {
    "gateway": {"ingress-nginx/*:8000", f"{PROMETHEUS}:9100"},
    "auth": {"gateway:8001", "results:8001", "bulk:8001", "notifier:8001", f"{PROMETHEUS}:8001"},
    "results": {"gateway:8002", "bulk:8002", f"{PROMETHEUS}:8002"},
    "auth-migrate": set(),
    "results-migrate": set(),
}
EXPECTED_EGRESS = {
    "gateway": {
        DNS,
        "redis:6379",
        "redis:26379",
        "auth:8001",
        "results:8002",
        "bulk:8003",
        "notifier:8004",
    },
    "auth": {DNS, *BACKING},
    "results": {DNS, *BACKING, "auth:8001"},
    "auth-migrate": {DNS, "pg:5432"},
    "results-migrate": {DNS, "pg:5432"},
}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_namespace_denies_everything_not_admitted(overlay: str) -> None:
    deny = [
        p
        for p in of_kind(render(overlay), "NetworkPolicy")
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert len(deny) == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("workload", sorted(EXPECTED_INGRESS))
def test_only_the_gateway_and_named_internal_callers_reach_a_service(
    overlay: str, workload: str
) -> None:
    docs = render(overlay)
    assert _rules(docs, _labels(docs, workload), "Ingress") == EXPECTED_INGRESS[workload]


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("workload", sorted(EXPECTED_EGRESS))
def test_services_reach_only_their_upstreams_and_backing_services(
    overlay: str, workload: str
) -> None:
    docs = render(overlay)
    assert _rules(docs, _labels(docs, workload), "Egress") == EXPECTED_EGRESS[workload]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_backing_services_admit_their_clients_and_peers_only(overlay: str) -> None:
    docs = render(overlay)
    redis = _rules(docs, {"app.kubernetes.io/name": "redis"}, "Ingress")
    assert redis == {
        f"{peer}:{port}"
        for peer in ("exam-results.io/redis-client=true", "redis")
        for port in ("6379", "26379")
    }
    postgres = _rules(docs, {"cnpg.io/cluster": "pg"}, "Ingress")
    assert "exam-results.io/postgres-client=true:5432" in postgres
    assert not any(r.startswith(("anywhere", "*")) for r in postgres)
    rabbit = _rules(docs, {"app.kubernetes.io/name": "rabbitmq"}, "Ingress")
    assert "exam-results.io/rabbitmq-client=true:5672" in rabbit
    assert not any(r.startswith(("anywhere", "*")) for r in rabbit)
