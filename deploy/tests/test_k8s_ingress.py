"""The way in from outside: one Ingress in prod, to the gateway's public port only.

prod exposes the gateway through ingress-nginx with TLS (overlays/prod/ingress.yaml);
dev exposes nothing (`kubectl port-forward`). No Service is a LoadBalancer or
NodePort, no pod takes a host port, and only the gateway's NetworkPolicy admits
the ingress controller's namespace. The annotations keep the live event stream
(`GET /api/v1/notifications/stream`) unbuffered and open across heartbeats, and let
uploads as large as the gateway's MAX_UPLOAD_BYTES through.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from k8s_support import (
    OVERLAYS,
    ROOT,
    Doc,
    all_containers,
    full_env,
    label_selector_matches,
    named,
    of_kind,
    pod_template,
    render,
    workloads,
)

INGRESS_NAMESPACE = "ingress-nginx"
# The labels the ingress-nginx chart and its static manifests give the controller pods.
CONTROLLER_LABELS = {
    "app.kubernetes.io/name": "ingress-nginx",
    "app.kubernetes.io/component": "controller",
}
NGINX = "nginx.ingress.kubernetes.io/"
GATEWAY_SETTINGS = ROOT / "services" / "gateway" / "src" / "gateway_service" / "settings.py"


def _ingress() -> Doc:
    (ingress,) = of_kind(render("prod"), "Ingress")
    return ingress


def _backends(ingress: Doc) -> list[Doc]:
    spec = ingress["spec"]
    found = [spec["defaultBackend"]] if "defaultBackend" in spec else []
    for rule in spec.get("rules", []):
        found += [path["backend"] for path in rule.get("http", {}).get("paths", [])]
    return found


def _gateway_container(docs: tuple[Doc, ...]) -> Doc:
    containers: list[Doc] = pod_template(named(docs, "Deployment", "gateway"))["spec"]["containers"]
    (container,) = containers
    return container


def _setting_default(path: Path, field: str) -> float:
    """A numeric Field default in a settings module, read from its source."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == field
            and isinstance(node.value, ast.Call)
        ):
            return float(ast.literal_eval(node.value.args[0]))
    raise KeyError(field)


def _nginx_size(value: str) -> int:
    """An nginx size (`50m`, `512k`, `1g`, bytes): binary units, as nginx reads them."""
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", value).groups()  # type: ignore[union-attr]
    return int(number) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[unit.lower()]


def test_prod_has_exactly_one_ingress_and_dev_none() -> None:
    assert len(of_kind(render("prod"), "Ingress")) == 1
    assert of_kind(render("dev"), "Ingress") == []


def test_the_ingress_routes_only_to_the_gateways_public_port() -> None:
    docs = render("prod")
    ingress = _ingress()
    service = named(docs, "Service", "gateway")
    public = [p for p in service["spec"]["ports"] if p["targetPort"] in ("http", 8000)]
    assert len(public) == 1 and public[0]["port"] == 8000
    backends = _backends(ingress)
    assert backends
    for backend in backends:
        assert "resource" not in backend
        assert backend["service"]["name"] == "gateway"
        port = backend["service"]["port"]
        assert port in ({"name": public[0]["name"]}, {"number": public[0]["port"]}), port


def test_the_ingress_has_a_class_and_tls_for_every_host() -> None:
    spec = _ingress()["spec"]
    assert spec.get("ingressClassName")
    tls = spec.get("tls", [])
    assert tls and all(t.get("secretName") for t in tls)
    hosts = [r.get("host") for r in spec["rules"]]
    covered = {h for t in tls for h in t.get("hosts", [])}
    assert hosts and all(h and h in covered for h in hosts), "every host served over TLS"


def test_the_ingress_neither_buffers_nor_cuts_the_event_stream() -> None:
    docs = render("prod")
    annotations = _ingress()["metadata"].get("annotations", {})
    assert annotations.get(f"{NGINX}proxy-buffering") == "off"
    read_timeout = float(annotations[f"{NGINX}proxy-read-timeout"])
    # The notifier's heartbeat: the longest silence of a healthy stream.
    (notifier,) = pod_template(named(docs, "Deployment", "notifier"))["spec"]["containers"]
    heartbeat = float(full_env(docs, notifier)["STREAM_HEARTBEAT_SECONDS"])
    assert read_timeout > heartbeat
    # The gateway answers (504) or ends a silent transfer before the ingress gives up.
    env = full_env(docs, _gateway_container(docs))
    for variable in ("UPSTREAM_TIMEOUT_SECONDS", "UPSTREAM_IDLE_READ_TIMEOUT_SECONDS"):
        budget = float(env.get(variable) or _setting_default(GATEWAY_SETTINGS, variable.lower()))
        assert read_timeout > budget, variable
    assert float(annotations.get(f"{NGINX}proxy-send-timeout", "60")) > heartbeat


def test_the_ingress_lets_uploads_as_large_as_the_gateways_limit_through() -> None:
    docs = render("prod")
    annotations = _ingress()["metadata"].get("annotations", {})
    limit = int(full_env(docs, _gateway_container(docs))["MAX_UPLOAD_BYTES"])
    assert _nginx_size(annotations[f"{NGINX}proxy-body-size"]) == limit
    assert annotations.get(f"{NGINX}proxy-request-buffering") == "off"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_service_or_pod_is_exposed_on_the_nodes(overlay: str) -> None:
    docs = render(overlay)
    exposed = [
        f"Service/{s['metadata']['name']}"
        for s in of_kind(docs, "Service")
        if s["spec"].get("type", "ClusterIP") != "ClusterIP" or s["spec"].get("externalIPs")
    ]
    exposed += [
        f"{w['kind']}/{w['metadata']['name']}"
        for w in workloads(docs)
        for c in all_containers(pod_template(w)["spec"])
        if any("hostPort" in p for p in c.get("ports", []))
    ]
    assert exposed == []


def _admits_controller(rule: Doc) -> bool:
    for peer in rule.get("from", []):
        namespaces = peer.get("namespaceSelector")
        if namespaces is None or not label_selector_matches(
            namespaces, {"kubernetes.io/metadata.name": INGRESS_NAMESPACE}
        ):
            continue
        if label_selector_matches(peer.get("podSelector", {}), CONTROLLER_LABELS):
            return True
    return False


def test_prod_gateway_policy_admits_the_ingress_controller_on_the_public_port() -> None:
    docs = render("prod")
    gateway = pod_template(named(docs, "Deployment", "gateway"))
    labels = gateway["metadata"]["labels"]
    (http,) = (p for p in gateway["spec"]["containers"][0]["ports"] if p["name"] == "http")
    admitted = [
        port
        for policy in of_kind(docs, "NetworkPolicy")
        if "Ingress" in policy["spec"].get("policyTypes", [])
        and label_selector_matches(policy["spec"]["podSelector"], labels)
        for rule in policy["spec"].get("ingress", [])
        if _admits_controller(rule)
        for port in rule.get("ports", [{}])
    ]
    assert admitted, "the gateway's NetworkPolicy must admit the ingress controller"
    assert all(p.get("port") in (http["containerPort"], http["name"]) for p in admitted), admitted


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_gateway_admits_the_ingress_controller_or_any_address(overlay: str) -> None:
    """A rule admitting anywhere, an address block or the ingress controller's namespace
    selects the gateway's pods, nothing else."""
    docs = render(overlay)
    wrong = []
    for policy in of_kind(docs, "NetworkPolicy"):
        selector = policy["spec"]["podSelector"]
        for rule in policy["spec"].get("ingress", []):
            peers = rule.get("from", [])
            open_to_outside = (
                not peers
                or any("ipBlock" in p for p in peers)
                or any(
                    "namespaceSelector" in p
                    and label_selector_matches(
                        p["namespaceSelector"], {"kubernetes.io/metadata.name": INGRESS_NAMESPACE}
                    )
                    for p in peers
                )
            )
            if open_to_outside and selector != {
                "matchLabels": {"app.kubernetes.io/name": "gateway"}
            }:
                wrong.append(policy["metadata"]["name"])
    assert wrong == []
