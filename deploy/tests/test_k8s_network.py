"""Who may talk to whom: default deny, the gateway in front, backing services by label.

NetworkPolicy is L4. It admits results to auth's port 8001, not to a path: that
/internal/... is never reachable from outside rests on the gateway's routing
table (tested in services/gateway), and on no one but the services below
reaching the services' ports at all.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from k8s_support import (
    OVERLAYS,
    Doc,
    full_env,
    label_selector_matches,
    named,
    of_kind,
    pod_template,
    render,
    selects,
    service_deployments,
    service_of,
    workloads,
)

NAME_KEYS = ("app.kubernetes.io/name", "cnpg.io/cluster", "k8s-app")


def _peer(peer: Doc) -> str:
    """A short name: `auth`, `pg`, `monitoring/prometheus`, `ingress-nginx/*`, or the labels."""
    if "ipBlock" in peer:  # `0.0.0.0/0-169.254.0.0/16`: a block and its exceptions
        block = peer["ipBlock"]
        return "-".join([block["cidr"], *block.get("except", [])])
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
# of DESIGN.md: every service -> auth (JWKS, service tokens and the revocation
# feed of docs/adr/0011), results -> auth (/internal lookups), bulk (API and
# worker) -> results (/internal exam checks and export stream). Prometheus
# scrapes; the ingress controller reaches the gateway only; nothing but
# Prometheus reaches a worker. Only notifier-worker leaves the cluster: SMTP
# to any address but link-local, HTTPS (webhooks) to public addresses only.
SMTP_PORTS = ("25", "465", "587")
ANYWHERE_BUT_LINK_LOCAL = "0.0.0.0/0-169.254.0.0/16"
PUBLIC = "0.0.0.0/0-10.0.0.0/8-172.16.0.0/12-192.168.0.0/16-169.254.0.0/16"
EXPECTED_INGRESS = {
    "gateway": {"ingress-nginx/*:8000", f"{PROMETHEUS}:9100"},
    "auth": {
        "gateway:8001",
        "results:8001",
        "bulk:8001",
        "bulk-worker:8001",
        "notifier:8001",
        "notifier-worker:8001",
        f"{PROMETHEUS}:8001",
    },
    "results": {"gateway:8002", "bulk:8002", "bulk-worker:8002", f"{PROMETHEUS}:8002"},
    "bulk": {"gateway:8003", f"{PROMETHEUS}:8003"},
    "bulk-worker": {f"{PROMETHEUS}:9100"},
    "notifier": {"gateway:8004", f"{PROMETHEUS}:8004"},
    "notifier-worker": {f"{PROMETHEUS}:9100"},
    "auth-migrate": set(),
    "results-migrate": set(),
    "bulk-migrate": set(),
    "notifier-migrate": set(),
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
    "bulk": {DNS, *BACKING, "auth:8001", "results:8002"},
    "bulk-worker": {DNS, *BACKING, "auth:8001", "results:8002"},
    "notifier": {DNS, *BACKING, "auth:8001"},
    "notifier-worker": {
        DNS,
        *BACKING,
        "auth:8001",
        *(f"{ANYWHERE_BUT_LINK_LOCAL}:{port}" for port in SMTP_PORTS),
        f"{PUBLIC}:443",
    },
    "auth-migrate": {DNS, "pg:5432"},
    "results-migrate": {DNS, "pg:5432"},
    "bulk-migrate": {DNS, "pg:5432"},
    "notifier-migrate": {DNS, "pg:5432"},
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


def _admitted(
    docs: tuple[Doc, ...], labels: dict[str, str], direction: str, peer: dict[str, str], port: Doc
) -> bool:
    """Whether the policies selecting a pod let it talk to ``peer`` (same namespace) on
    ``port`` (a container port: number and name) in ``direction``. Not ``_rules``: that
    lists rules by name, this evaluates them the way the CNI does."""
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    policies = [
        p
        for p in of_kind(docs, "NetworkPolicy")
        if direction in p["spec"].get("policyTypes", [])
        and label_selector_matches(p["spec"]["podSelector"], labels)
    ]
    if not policies:
        return True  # not isolated in this direction
    for policy in policies:
        for rule in policy["spec"].get(key, []):
            peers = rule.get(peers_key, [])
            peer_ok = not peers or any(
                "namespaceSelector" not in p
                and "ipBlock" not in p
                and label_selector_matches(p.get("podSelector", {}), peer)
                for p in peers
            )
            ports = rule.get("ports", [])
            port_ok = not ports or any(
                p.get("protocol", "TCP") == port.get("protocol", "TCP")
                and (
                    p.get("port") in (None, port["containerPort"], port.get("name"))
                    or (
                        isinstance(p["port"], int)
                        and p["port"] <= port["containerPort"] <= p.get("endPort", p["port"])
                    )
                )
                for p in ports
            )
            if peer_ok and port_ok:
                return True
    return False


def _reach_problems(
    docs: tuple[Doc, ...], deployment: Doc, container: Doc, variable: str, target: str
) -> list[str]:
    """Why the pods of ``deployment`` cannot call Deployment ``target`` at the URL in
    ``variable``: the address must be a Service selecting ``target``'s pods, on one
    port of theirs, and both sides' policies must admit the call."""
    name = deployment["metadata"]["name"]
    pod = pod_template(named(docs, "Deployment", target))
    target_labels: dict[str, str] = pod["metadata"]["labels"]
    labels: dict[str, str] = pod_template(deployment)["metadata"]["labels"]
    url = urlsplit(full_env(docs, container).get(variable, ""))
    try:
        service = named(docs, "Service", url.hostname or "")
    except KeyError:
        return [f"{name}: {variable} {url.geturl()!r} is no Service"]
    if not selects(service["spec"].get("selector", {}), target_labels):
        return [f"{name}: {variable}'s Service does not select {target}"]
    targets = {
        s.get("targetPort", s["port"])
        for s in service["spec"]["ports"]
        if s["port"] == (url.port or 80)
    }
    ports = [
        p
        for c in pod["spec"]["containers"]
        for p in c.get("ports", [])
        if targets & {p["containerPort"], p.get("name")}
    ]
    if len(ports) != 1:
        return [f"{name}: {variable}'s port reaches {len(ports)} {target} ports"]
    problems = []
    if not _admitted(docs, labels, "Egress", target_labels, ports[0]):
        problems.append(f"{name}: its egress does not admit {target}:{ports[0]}")
    if not _admitted(docs, target_labels, "Ingress", labels, ports[0]):
        problems.append(f"{name}: {target}'s ingress does not admit it on {ports[0]}")
    return problems


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_pod_reaches_auth_at_its_auth_url(overlay: str) -> None:
    """Service tokens and the revocation feed (docs/adr/0011): every pod of every
    service but auth (API and worker Deployments alike, whatever their labels) calls
    AUTH_URL, so that address must be auth's Service and both sides' policies must
    admit the call."""
    docs = render(overlay)
    problems, checked = [], set()
    for deployment in service_deployments(docs):
        for container in pod_template(deployment)["spec"]["containers"]:
            if service_of(container) in (None, "auth"):
                continue
            checked.add(deployment["metadata"]["name"])
            problems += _reach_problems(docs, deployment, container, "AUTH_URL", "auth")
    assert problems == []
    assert checked >= {"gateway", "results", "bulk", "bulk-worker", "notifier", "notifier-worker"}


# The other service-to-service calls by address: variable -> the API Deployment it names.
UPSTREAM_URLS = {"RESULTS_URL": "results", "BULK_URL": "bulk", "NOTIFIER_URL": "notifier"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_upstream_url_a_pod_is_given_is_reachable(overlay: str) -> None:
    """The gateway's routes (RESULTS_URL, BULK_URL, NOTIFIER_URL) and bulk's calls to results'
    /internal endpoints (RESULTS_URL, from the API and the worker alike)."""
    docs = render(overlay)
    problems, checked = [], set()
    for deployment in service_deployments(docs):
        for container in pod_template(deployment)["spec"]["containers"]:
            if not service_of(container):
                continue
            env = full_env(docs, container)
            for variable, target in UPSTREAM_URLS.items():
                if variable in env:
                    checked.add(f"{deployment['metadata']['name']}:{variable}")
                    problems += _reach_problems(docs, deployment, container, variable, target)
    assert problems == []
    assert checked >= {
        "gateway:RESULTS_URL",
        "gateway:BULK_URL",
        "gateway:NOTIFIER_URL",
        "bulk:RESULTS_URL",
        "bulk-worker:RESULTS_URL",
    }
