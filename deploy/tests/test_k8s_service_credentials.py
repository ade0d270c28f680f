"""Service credentials (docs/adr/0011): whose secret comes from where, and that dev's fit.

Every service but auth reads ``SERVICE_CLIENT_SECRET`` from its own Secret
``<service>-service-client``; auth reads the registry of their hashes,
``SERVICE_CLIENTS``, from ``auth-service-clients``. prod references them by
name; only the dev overlay holds values, and those must let a dev cluster
actually get tokens: each client's secret hashes to an entry of the registry.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator

import pytest
import yaml
from k8s_support import (
    K8S,
    OVERLAYS,
    Doc,
    all_containers,
    configmap_env,
    full_env,
    known_env,
    named,
    of_kind,
    pod_template,
    render,
    service_of,
    workloads,
)

CLIENT_SECRET_VAR = "SERVICE_CLIENT_SECRET"
REGISTRY_VAR = "SERVICE_CLIENTS"
REGISTRY_SECRET, REGISTRY_KEY = "auth-service-clients", "clients"
CLIENT_SECRET_KEY = "secret"
CLIENT_SECRET_NAME = re.compile(r"(?P<client>[a-z0-9-]+)-service-client")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# auth-service-clients is parsed by auth's ServiceClientGrant (extra="forbid").
GRANT_KEYS = {"secret_sha256", "audiences"}


def _client_secret(service: str) -> str:
    return f"{service}-service-client"


def _service_containers(docs: tuple[Doc, ...]) -> Iterator[tuple[Doc, Doc, str]]:
    """(workload, container, service) for every container running one of our images."""
    for workload in workloads(docs):
        for container in all_containers(pod_template(workload)["spec"]):
            service = service_of(container)
            if service:
                yield workload, container, service


def _where(workload: Doc, container: Doc) -> str:
    return f"{workload['kind']}/{workload['metadata']['name']}/{container['name']}"


def _secret_key_ref(container: Doc, var: str) -> Doc | None:
    """The secretKeyRef of ``var`` in the container's env; None if it is not set that way."""
    refs = [
        v.get("valueFrom", {}).get("secretKeyRef")
        for v in container.get("env", [])
        if v["name"] == var
    ]
    return refs[0] if len(refs) == 1 else None


def _refers_to(docs: tuple[Doc, ...], rendered: str, source: str) -> bool:
    """``rendered`` is Secret ``source`` as kustomize names it.

    prod references Secrets by their own names; dev's secretGenerator appends
    a content hash, and then the Secret must be one that dev renders.
    """
    if rendered == source:
        return True
    generated = {s["metadata"]["name"] for s in of_kind(docs, "Secret")}
    hashed = re.fullmatch(rf"{re.escape(source)}-[a-z0-9]{{10}}", rendered)
    return rendered in generated and hashed is not None


def _secret_value(docs: tuple[Doc, ...], ref: Doc) -> str:
    secret = named(docs, "Secret", ref["name"])
    return base64.b64decode(secret["data"][ref["key"]]).decode("utf-8")


# --- who reads which Secret ------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_but_auth_reads_its_client_secret_from_its_own_secret(overlay: str) -> None:
    """Deployments (API and any worker) and migration Jobs alike: in production the
    settings refuse the development default, and `migrate` builds them too."""
    docs = render(overlay)
    problems, deployments = [], set()
    for workload, container, service in _service_containers(docs):
        if service == "auth":  # calls no other service; it holds the registry instead
            continue
        where = _where(workload, container)
        if CLIENT_SECRET_VAR in configmap_env(docs, container):
            problems.append(f"{where}: {CLIENT_SECRET_VAR} in a ConfigMap")
        ref = _secret_key_ref(container, CLIENT_SECRET_VAR)
        if (
            ref is None
            or ref.get("key") != CLIENT_SECRET_KEY
            or not _refers_to(docs, ref.get("name", ""), _client_secret(service))
        ):
            problems.append(
                f"{where}: {CLIENT_SECRET_VAR} must come from Secret "
                f"{_client_secret(service)}, key {CLIENT_SECRET_KEY}; got {ref}"
            )
        elif workload["kind"] == "Deployment":
            deployments.add(workload["metadata"]["name"])
    assert problems == []
    assert deployments >= {
        "gateway",
        "results",
        "bulk",
        "bulk-worker",
        "notifier",
        "notifier-worker",
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_auth_reads_the_service_client_registry_from_its_secret(overlay: str) -> None:
    docs = render(overlay)
    problems, readers = [], set()
    for workload, container, service in _service_containers(docs):
        where = _where(workload, container)
        if REGISTRY_VAR in configmap_env(docs, container):
            problems.append(f"{where}: {REGISTRY_VAR} in a ConfigMap")
        if service != "auth":
            if any(v["name"] == REGISTRY_VAR for v in container.get("env", [])):
                problems.append(f"{where}: only auth reads {REGISTRY_VAR}")
            continue
        ref = _secret_key_ref(container, REGISTRY_VAR)
        if (
            ref is None
            or ref.get("key") != REGISTRY_KEY
            or not _refers_to(docs, ref.get("name", ""), REGISTRY_SECRET)
        ):
            problems.append(
                f"{where}: {REGISTRY_VAR} must come from Secret {REGISTRY_SECRET}, "
                f"key {REGISTRY_KEY}; got {ref}"
            )
        else:
            readers.add(f"{workload['kind']}/{workload['metadata']['name']}")
    assert problems == []
    assert readers >= {"Deployment/auth", "Job/auth-migrate"}


# --- values only in the dev overlay -------------------------------------------------------


def _dev_secret_values() -> set[str]:
    """The credential values the dev overlay generates (not user names or emails),
    and the hashes inside auth-service-clients."""
    kustomization = yaml.safe_load((K8S / "overlays" / "dev" / "kustomization.yaml").read_text())
    values: set[str] = set()
    for generator in kustomization["secretGenerator"]:
        for literal in generator.get("literals", []):
            key, _, value = literal.partition("=")
            if key == REGISTRY_KEY:
                values |= set(re.findall(SHA256_HEX, value))
            elif key in {"password", "secret"}:
                values.add(value)
    return values


def test_no_credential_value_is_committed_in_base_or_prod() -> None:
    values = _dev_secret_values()
    assert {"dev-service-client-secret-not-for-production"} <= values
    sources = [
        path
        for folder in (K8S / "base", K8S / "overlays" / "prod")
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    ]
    problems = []
    for path in sources:
        text = path.read_text(encoding="utf-8")
        problems += [f"{path.relative_to(K8S)}: {v}" for v in sorted(values) if v in text]
        if re.search(r"^\s*secretGenerator:|^kind:\s*Secret\s*$", text, flags=re.MULTILINE):
            problems.append(f"{path.relative_to(K8S)}: makes a Secret")
    rendered = yaml.safe_dump_all(render("prod"))
    problems += [f"rendered prod: {v}" for v in sorted(values) if v in rendered]
    assert problems == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_credentials_are_never_literal_environment_values(overlay: str) -> None:
    docs = render(overlay)
    problems = [
        f"{_where(w, c)}: {v['name']} has a literal value"
        for w, c, _ in _service_containers(docs)
        for v in c.get("env", [])
        if v["name"] in {CLIENT_SECRET_VAR, REGISTRY_VAR} and "value" in v
    ]
    assert problems == []


# --- the dev values work together ----------------------------------------------------------


def _dev_registry(docs: tuple[Doc, ...]) -> Doc:
    container = next(c for _, c, s in _service_containers(docs) if s == "auth")
    ref = _secret_key_ref(container, REGISTRY_VAR)
    assert ref is not None
    registry = json.loads(_secret_value(docs, ref))
    assert isinstance(registry, dict) and registry, "SERVICE_CLIENTS is a JSON object"
    return registry


def test_dev_service_client_registry_is_what_auth_parses() -> None:
    problems = []
    for client, grant in _dev_registry(render("dev")).items():
        if not isinstance(grant, dict) or set(grant) != GRANT_KEYS:
            problems.append(f"{client}: needs exactly {sorted(GRANT_KEYS)}, got {grant}")
            continue
        hashes, audiences = grant["secret_sha256"], grant["audiences"]
        if not (
            isinstance(hashes, list)
            and hashes
            and all(isinstance(h, str) and SHA256_HEX.fullmatch(h) for h in hashes)
        ):
            problems.append(f"{client}: secret_sha256 is not a list of hex SHA-256 digests")
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            problems.append(f"{client}: audiences is not a list of service names")
            continue
        # Every client polls auth's revocation feed with a token for auth.
        if "auth" not in audiences:
            problems.append(f"{client}: cannot get a token for auth")
        problems += [
            f"{client}: audience {a} is no service" for a in audiences if known_env(a) is None
        ]
    assert problems == []


def test_dev_client_secrets_match_their_hash_in_the_registry() -> None:
    """Else a dev cluster's services never get a token, and never become ready."""
    docs = render("dev")
    registry = _dev_registry(docs)
    problems, checked = [], set()
    for secret in of_kind(docs, "Secret"):
        name = secret["metadata"]["name"]
        match = CLIENT_SECRET_NAME.fullmatch(re.sub(r"-[a-z0-9]{10}$", "", name))
        if not match:
            continue
        value = _secret_value(docs, {"name": name, "key": CLIENT_SECRET_KEY})
        digest = hashlib.sha256(value.encode("utf-8")).hexdigest()
        grant = registry.get(match["client"])
        if grant is None:
            problems.append(f"Secret {name}: client {match['client']} not in the registry")
        elif digest not in grant["secret_sha256"]:
            problems.append(f"Secret {name}: its SHA-256 is not among {match['client']}'s")
        if len(value) < 16:
            problems.append(f"Secret {name}: shorter than 16 characters")
        checked.add(match["client"])
    # The id each pod presents is SERVICE_CLIENT_ID, or its service's name.
    for workload, container, service in _service_containers(docs):
        ref = _secret_key_ref(container, CLIENT_SECRET_VAR)
        if ref is None:
            continue
        env = full_env(docs, container)
        client = env.get("SERVICE_CLIENT_ID") or env.get("SERVICE_NAME") or service
        digest = hashlib.sha256(_secret_value(docs, ref).encode("utf-8")).hexdigest()
        if digest not in registry.get(client, {}).get("secret_sha256", []):
            problems.append(f"{_where(workload, container)}: client {client} has no such hash")
    assert problems == []
    assert checked >= {"gateway", "results", "bulk", "notifier"}
