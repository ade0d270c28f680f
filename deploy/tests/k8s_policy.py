"""Policy checks of rendered manifests: each returns the problems it finds.

Kept apart from the tests so the tests of the checks themselves
(test_k8s_policy_checks.py) can feed them broken objects.
"""

from __future__ import annotations

import re
from typing import Any

from k8s_support import Doc, all_containers, pod_template

# ghcr.io/exam-results/auth:1.2.3 or a third-party image with a version tag.
OUR_TAG = re.compile(r"^\d+\.\d+\.\d+([.-][0-9A-Za-z.-]+)?$")
VERSION_TAG = re.compile(r"^v?\d+(\.\d+)*([.-][0-9A-Za-z.-]+)?$")


def _where(workload: Doc, container: Doc | None = None) -> str:
    base = f"{workload['kind']}/{workload['metadata']['name']}"
    return f"{base}/{container['name']}" if container else base


def resources_problems(workload: Doc) -> list[str]:
    problems = []
    for c in all_containers(pod_template(workload)["spec"]):
        res: dict[str, Any] = c.get("resources", {})
        for part in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(res.get(part, {}))
            if missing:
                problems.append(f"{_where(workload, c)}: no {part} for {sorted(missing)}")
    return problems


def security_problems(workload: Doc) -> list[str]:
    """The "restricted" Pod Security Standard, plus a read-only root filesystem."""
    spec = pod_template(workload)["spec"]
    pod_ctx: dict[str, Any] = spec.get("securityContext", {})
    problems = []
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        problems.append(f"{_where(workload)}: shares a host namespace")
    if spec.get("automountServiceAccountToken") is not False:
        problems.append(f"{_where(workload)}: mounts a service account token")
    for c in all_containers(spec):
        ctx: dict[str, Any] = c.get("securityContext", {})
        where = _where(workload, c)

        def effective(key: str, ctx: dict[str, Any] = ctx) -> Any:
            return ctx.get(key, pod_ctx.get(key))

        if effective("runAsNonRoot") is not True:
            problems.append(f"{where}: runAsNonRoot is not true")
        if effective("runAsUser") in (0, None):
            # Numeric and non-zero, or the kubelet cannot prove non-root for a named USER.
            problems.append(f"{where}: runAsUser is not a non-zero number")
        if (effective("seccompProfile") or {}).get("type") not in {"RuntimeDefault", "Localhost"}:
            problems.append(f"{where}: no RuntimeDefault seccomp profile")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
        if ctx.get("privileged"):
            problems.append(f"{where}: privileged")
        if ctx.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: root filesystem is writable")
        caps: dict[str, Any] = ctx.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            problems.append(f"{where}: capabilities not dropped (drop: [ALL])")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{where}: adds capabilities {caps['add']}")
    return problems


def probe_problems(workload: Doc) -> list[str]:
    """Long-running containers need startup, readiness and liveness probes."""
    problems = []
    for c in pod_template(workload)["spec"]["containers"]:
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if probe not in c:
                problems.append(f"{_where(workload, c)}: no {probe}")
    return problems


def service_probe_paths_problems(workload: Doc) -> list[str]:
    """Our services: alive is /healthz, ready is /readyz (the kit's endpoints)."""
    expected = {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    problems = []
    for c in pod_template(workload)["spec"]["containers"]:
        for probe, path in expected.items():
            got = c.get(probe, {}).get("httpGet", {}).get("path")
            if got != path:
                problems.append(f"{_where(workload, c)}: {probe} checks {got}, not {path}")
    return problems


def rollout_problems(deployment: Doc) -> list[str]:
    """Zero-downtime rollout and graceful termination of a service Deployment."""
    where = _where(deployment)
    spec = deployment["spec"]
    pod = pod_template(deployment)["spec"]
    problems = []
    if "replicas" in spec:
        problems.append(f"{where}: spec.replicas is set; the HPA owns the count")
    strategy = spec.get("strategy", {})
    if strategy.get("type") != "RollingUpdate":
        problems.append(f"{where}: not a RollingUpdate")
    if strategy.get("rollingUpdate", {}).get("maxUnavailable") not in (0, "0%"):
        problems.append(f"{where}: maxUnavailable is not 0")
    keys = {c.get("topologyKey") for c in pod.get("topologySpreadConstraints", [])}
    for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname"):
        if key not in keys:
            problems.append(f"{where}: no topology spread over {key}")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    for c in pod["containers"]:
        pre_stop = c.get("lifecycle", {}).get("preStop")
        if not pre_stop:
            problems.append(f"{_where(deployment, c)}: no preStop")
            continue
        pause = pre_stop.get("sleep", {}).get("seconds", 0)
        # uvicorn's own graceful shutdown (service_kit.serve) takes up to 20 s.
        if grace < pause + 20:
            problems.append(f"{where}: terminationGracePeriodSeconds {grace} < preStop + 20 s")
    return problems


def image_problems(workload: Doc) -> list[str]:
    problems = []
    for c in all_containers(pod_template(workload)["spec"]):
        image: str = c["image"]
        where = _where(workload, c)
        if "@sha256:" in image:
            continue
        name, _, tag = image.rpartition(":")
        if not name or "/" in tag:
            problems.append(f"{where}: image {image} has no tag")
        elif tag == "latest":
            problems.append(f"{where}: image {image} uses latest")
        elif image.startswith("ghcr.io/exam-results/") and not OUR_TAG.match(tag):
            problems.append(f"{where}: image {image} is not a released version")
        elif not VERSION_TAG.match(tag):
            problems.append(f"{where}: image {image} is not pinned to a version")
    return problems


def secret_literal_problems(docs: tuple[Doc, ...]) -> list[str]:
    return [
        f"Secret/{d['metadata']['name']} carries values in the manifests"
        for d in docs
        if d["kind"] == "Secret" and (d.get("data") or d.get("stringData"))
    ]


def env_problems(container: Doc, configmap_keys: set[str], known: set[str]) -> list[str]:
    """Every variable a service container gets must be one its settings read.

    Two exceptions: the standard OTEL_* variables (read by OpenTelemetry, not
    by our settings), and a variable that only feeds another one through
    Kubernetes' $(VAR) expansion, which must come from a Secret.
    """
    name = container["name"]
    env = container.get("env", [])
    referenced = {
        ref
        for var in env
        for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", var.get("value", ""))
    }
    problems = []
    for source in container.get("envFrom", []):
        if "secretRef" in source:
            problems.append(f"{name}: envFrom a Secret hides which variables it sets")
    for key in sorted(configmap_keys):
        if key not in known and not key.startswith("OTEL_"):
            problems.append(f"{name}: ConfigMap sets {key}, which no setting reads")
    for var in env:
        key = var["name"]
        if key in known or key.startswith("OTEL_"):
            continue
        if key in referenced and "secretKeyRef" in var.get("valueFrom", {}):
            continue
        problems.append(f"{name}: sets {key}, which no setting reads")
    return problems
