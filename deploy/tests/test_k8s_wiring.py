"""The objects fit together: selectors, companions, environment, addresses, secrets."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from k8s_policy import env_problems
from k8s_support import (
    OVERLAYS,
    Doc,
    all_containers,
    api_deployments,
    configmap_env,
    documented_secrets,
    env_value,
    full_env,
    is_documented,
    is_worker,
    known_env,
    label_selector_matches,
    named,
    of_kind,
    operator_secrets,
    pod_template,
    referenced_secrets,
    render,
    selects,
    service_deployments,
    service_of,
    workloads,
)

# Kit defaults (service_kit.settings) when a ConfigMap does not set them.
KIT_POOL_SIZE, KIT_MAX_OVERFLOW = 10, 10
# Connections Postgres keeps for itself: superuser reserve, replication, operator.
PG_RESERVED_CONNECTIONS = 20
# Connections a pod holds beside its pool: the notifier API's stream hub LISTENs
# on one of its own (notifier_service.streams.hub).
EXTRA_CONNECTIONS_PER_POD = {"notifier": 1}


def _pods(docs: tuple[Doc, ...]) -> list[tuple[Doc, dict[str, str]]]:
    return [(w, pod_template(w)["metadata"].get("labels", {})) for w in workloads(docs)]


def _main_container(deployment: Doc) -> Doc:
    containers: list[Doc] = pod_template(deployment)["spec"]["containers"]
    (container,) = (c for c in containers if service_of(c))
    return container


# --- companions of every service Deployment ------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_deployment_has_pdb_hpa_account_policy_and_monitor(overlay: str) -> None:
    docs = render(overlay)
    problems = []
    for deployment in service_deployments(docs):
        name = deployment["metadata"]["name"]
        labels = pod_template(deployment)["metadata"]["labels"]
        pdbs = [
            p
            for p in of_kind(docs, "PodDisruptionBudget")
            if label_selector_matches(p["spec"]["selector"], labels)
        ]
        if len(pdbs) != 1:
            problems.append(f"{name}: {len(pdbs)} PodDisruptionBudgets select its pods")
        hpas = [
            h
            for h in of_kind(docs, "HorizontalPodAutoscaler")
            if h["spec"]["scaleTargetRef"]
            == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        ]
        if len(hpas) != 1 or hpas[0]["apiVersion"] != "autoscaling/v2":
            problems.append(f"{name}: needs exactly one autoscaling/v2 HPA")
        account = pod_template(deployment)["spec"].get("serviceAccountName")
        accounts = {a["metadata"]["name"]: a for a in of_kind(docs, "ServiceAccount")}
        if (
            account != name
            or accounts.get(account, {}).get("automountServiceAccountToken") is not False
        ):
            problems.append(f"{name}: needs its own ServiceAccount {name} without a token")
        own_policies = [
            p
            for p in of_kind(docs, "NetworkPolicy")
            if p["spec"]["podSelector"]
            and label_selector_matches(p["spec"]["podSelector"], labels)
            and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        ]
        if not own_policies:
            problems.append(f"{name}: no NetworkPolicy of its own (Ingress and Egress)")
        services = [
            s for s in of_kind(docs, "Service") if selects(s["spec"].get("selector", {}), labels)
        ]
        monitored = [
            m
            for m in of_kind(docs, "ServiceMonitor")
            for s in services
            if label_selector_matches(m["spec"]["selector"], s["metadata"].get("labels", {}))
            and {e["port"] for e in m["spec"]["endpoints"]}
            <= {p["name"] for p in s["spec"]["ports"]}
        ]
        if not monitored:
            problems.append(f"{name}: no ServiceMonitor scrapes a named port of its Service")
    assert problems == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_selects_pods_that_exist_on_ports_they_open(overlay: str) -> None:
    docs = render(overlay)
    pods = _pods(docs)
    problems = []
    for service in of_kind(docs, "Service"):
        name = service["metadata"]["name"]
        matching = [w for w, labels in pods if selects(service["spec"].get("selector", {}), labels)]
        if not matching:
            problems.append(f"Service/{name} selects no pods")
            continue
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            opened = {
                p.get("name") if isinstance(target, str) else p["containerPort"]
                for w in matching
                for c in pod_template(w)["spec"]["containers"]
                for p in c.get("ports", [])
            }
            if target not in opened:
                problems.append(f"Service/{name}: no selected container opens {target}")
    assert problems == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_and_autoscalers_point_at_existing_workloads(overlay: str) -> None:
    docs = render(overlay)
    pods = _pods(docs)
    operator_pods = {  # pods the operators create from rendered resources
        "rabbitmq": {"app.kubernetes.io/name": "rabbitmq"},
    }
    problems = []
    for pdb in of_kind(docs, "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]
        if not any(label_selector_matches(selector, labels) for _, labels in pods) and not any(
            label_selector_matches(selector, labels) for labels in operator_pods.values()
        ):
            problems.append(f"PodDisruptionBudget/{pdb['metadata']['name']} selects nothing")
    for hpa in of_kind(docs, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        try:
            named(docs, target["kind"], target["name"])
        except KeyError:
            problems.append(f"HPA/{hpa['metadata']['name']} scales a missing {target}")
    assert problems == []


# --- environment ----------------------------------------------------------------


def test_settings_reader_finds_what_the_services_read() -> None:
    auth = known_env("auth")
    assert auth is not None
    assert {
        "DATABASE_URL",
        "AUTH_DATABASE_REPLICA_URL",
        "JWT_SIGNING_KEY_FILE",
        "ADMIN_PASSWORD",
    } <= auth
    assert "DEV_SECRET_FIELDS" not in auth  # a ClassVar, not a setting
    gateway = known_env("gateway")
    assert gateway is not None
    assert {"GATEWAY_PORT", "CORS_ALLOW_ORIGINS", "REDIS_SENTINELS"} <= gateway
    assert known_env("no-such-service") is None


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_variable_a_service_gets_is_one_its_settings_read(overlay: str) -> None:
    docs = render(overlay)
    problems, checked = [], set()
    for workload in workloads(docs):
        for container in all_containers(pod_template(workload)["spec"]):
            service = service_of(container)
            known = known_env(service) if service else None
            if known is None:  # third-party image, or a service not built yet
                continue
            checked.add(service)
            keys = set(configmap_env(docs, container))
            problems += [
                f"{workload['kind']}/{workload['metadata']['name']}/{p}"
                for p in env_problems(container, keys, known)
            ]
    assert checked >= {"gateway", "auth", "results", "bulk", "notifier"}
    assert problems == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migration_job_runs_with_the_deployments_image_and_environment(overlay: str) -> None:
    """One Job per service with a schema, named after its API Deployment (a
    worker Deployment's schema is its API's)."""
    docs = render(overlay)
    with_database = [
        d for d in api_deployments(docs) if env_value(_main_container(d), "DATABASE_URL")
    ]
    assert {d["metadata"]["name"] for d in with_database} >= {
        "auth",
        "results",
        "bulk",
        "notifier",
    }
    for deployment in with_database:
        name = deployment["metadata"]["name"]
        job = named(docs, "Job", f"{name}-migrate")
        app, (migrate,) = _main_container(deployment), pod_template(job)["spec"]["containers"]
        assert migrate["image"] == app["image"], name
        assert migrate["command"] == [*app["command"], "migrate"], name
        # `migrate` builds the full settings, which refuse dev secrets in production.
        assert migrate["env"] == app["env"], name
        assert migrate["envFrom"] == app["envFrom"], name
        spec = job["spec"]
        assert spec["backoffLimit"] <= 6 and spec["ttlSecondsAfterFinished"] > 0, name
        assert pod_template(job)["spec"]["restartPolicy"] == "Never", name
        assert pod_template(job)["spec"]["serviceAccountName"] == name


# Memory a bulk worker may use while it parses (issue 9): its limit must leave headroom.
WORKER_RSS_TARGET_BYTES = {"bulk-worker": 200 * 1000**2}
MEMORY_UNITS = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "k": 1000, "M": 1000**2, "G": 1000**3}


def _bytes(quantity: str) -> int:
    for unit, factor in MEMORY_UNITS.items():
        if quantity.endswith(unit):
            return int(float(quantity[: -len(unit)]) * factor)
    return int(quantity)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_deployments_run_their_apis_image_and_environment(overlay: str) -> None:
    """A worker Deployment (docs/adding-a-service.md 9) is its service's image with
    the `worker` command, the API's environment, and the API runs no workers."""
    docs = render(overlay)
    workers = [d for d in service_deployments(docs) if is_worker(d)]
    assert {d["metadata"]["name"] for d in workers} >= {"bulk-worker", "notifier-worker"}
    apis = {service_of(_main_container(d)): d for d in api_deployments(docs)}
    problems = []
    for worker in workers:
        name, container = worker["metadata"]["name"], _main_container(worker)
        api = apis.get(service_of(container))
        if api is None:
            problems.append(f"{name}: no API Deployment runs {container['image']}")
            continue
        app = _main_container(api)
        if container["image"] != app["image"]:
            problems.append(f"{name}: image {container['image']}, API {app['image']}")
        if container["command"] != [*app["command"], "worker"]:
            problems.append(f"{name}: command {container['command']}")
        if container.get("env") != app.get("env") or container["envFrom"] != app["envFrom"]:
            problems.append(f"{name}: environment differs from {api['metadata']['name']}'s")
        # `<SERVICE>_RUN_WORKERS` (notifier) wins over the suite-wide RUN_WORKERS.
        api_env = full_env(docs, app)
        own = f"{str(service_of(app)).upper()}_RUN_WORKERS"
        run_workers = api_env.get(own, api_env.get("RUN_WORKERS", "true"))
        if run_workers.lower() not in {"false", "0"}:
            problems.append(f"{api['metadata']['name']}: {own} / RUN_WORKERS is not false")
        env = full_env(docs, container)
        port = int(env.get("WORKER_PORT", "9100"))
        if env.get("WORKER_HOST") != "0.0.0.0":
            problems.append(f"{name}: WORKER_HOST is not 0.0.0.0 (probes could not reach it)")
        if [p["containerPort"] for p in container.get("ports", [])] != [port]:
            problems.append(f"{name}: opens {container.get('ports')}, serves on {port}")
        target = WORKER_RSS_TARGET_BYTES.get(name)
        limit = container["resources"]["limits"]["memory"]
        if target and _bytes(limit) < target * 5 // 4:
            problems.append(f"{name}: memory limit {limit} leaves < 25% over {target} bytes")
    assert problems == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rollout_phases_select_what_readme_says(overlay: str) -> None:
    """README.md "Rolling out" applies by app.kubernetes.io/component in phases."""
    docs = render(overlay)

    def component(doc: Doc) -> str | None:
        labels: dict[str, str] = doc["metadata"].get("labels", {})
        return labels.get("app.kubernetes.io/component")

    first = [d for d in docs if component(d) not in {"server", "migration"}]
    migrations = [d for d in docs if component(d) == "migration"]
    assert {d["kind"] for d in first} >= {"Namespace", "ConfigMap", "NetworkPolicy", "Cluster"}
    assert not [d for d in first if d["kind"] in {"Deployment", "Job"}]
    assert {d["kind"] for d in migrations} == {"Job"}
    assert {d["metadata"]["name"] for d in migrations} == {
        f"{d['metadata']['name']}-migrate"
        for d in api_deployments(docs)
        if env_value(_main_container(d), "DATABASE_URL")
    }
    for deployment in service_deployments(docs):
        assert component(deployment) == "server"


# --- addresses -------------------------------------------------------------------


def _endpoints(docs: tuple[Doc, ...]) -> dict[str, set[int]]:
    """host -> ports reachable by that name inside the namespace."""
    found: dict[str, set[int]] = {
        s["metadata"]["name"]: {p["port"] for p in s["spec"]["ports"]}
        for s in of_kind(docs, "Service")
    }
    for cluster in of_kind(docs, "Cluster"):  # CloudNativePG's Services
        for suffix in ("rw", "ro", "r"):
            found[f"{cluster['metadata']['name']}-{suffix}"] = {5432}
    for rabbit in of_kind(docs, "RabbitmqCluster"):
        found[rabbit["metadata"]["name"]] = {5672, 15672, 15692}
    for sts in of_kind(docs, "StatefulSet"):
        headless = found.get(sts["spec"]["serviceName"], set())
        for ordinal in range(sts["spec"]["replicas"]):
            found[f"{sts['metadata']['name']}-{ordinal}.{sts['spec']['serviceName']}"] = headless
    return found


# Addresses outside the cluster: links in the notifier's emails (the browser's
# frontend) and where its webhooks go.
OUTSIDE_URLS = {"FRONTEND_URL", "WEBHOOK_URL"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_address_in_the_configuration_reaches_something(overlay: str) -> None:
    docs = render(overlay)
    endpoints = _endpoints(docs)
    not_built: dict[str, int] = {}  # host -> port of a service not deployed yet
    problems = []
    for deployment in service_deployments(docs):
        for key, value in full_env(docs, _main_container(deployment)).items():
            targets: list[tuple[str | None, int | None]] = []
            if key in OUTSIDE_URLS:
                continue
            if key.endswith("_URL") and "://" in value:
                parts = urlsplit(value)
                targets.append((parts.hostname, parts.port))
            elif key == "REDIS_SENTINELS":
                targets += [
                    (h, int(p)) for h, _, p in (i.rpartition(":") for i in value.split(","))
                ]
            for host, port in targets:
                if host in not_built and known_env(host) is None and port == not_built[host]:
                    continue
                if host not in endpoints or port not in endpoints[host]:
                    problems.append(f"{deployment['metadata']['name']}: {key} -> {host}:{port}")
    assert problems == []


# --- backing services --------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_using_a_backing_service_carry_its_client_label(overlay: str) -> None:
    """The labels are what the NetworkPolicies admit (base/backing/network-policies.yaml)."""
    docs = render(overlay)
    problems = []
    for workload in workloads(docs, ("Deployment", "Job")):
        labels = pod_template(workload)["metadata"]["labels"]
        for container in pod_template(workload)["spec"]["containers"]:
            if not service_of(container):
                continue
            env = full_env(docs, container)
            needs = {"postgres": "DATABASE_URL" in env}
            if workload["kind"] == "Deployment":  # a migration only talks to Postgres
                needs["redis"] = "REDIS_SENTINELS" in env or "REDIS_URL" in env
                needs["rabbitmq"] = "RABBITMQ_URL" in env
            for backing, needed in needs.items():
                has = labels.get(f"exam-results.io/{backing}-client") == "true"
                if needed != has:
                    problems.append(
                        f"{workload['metadata']['name']}: {backing} needed={needed} label={has}"
                    )
    assert problems == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_database_connections_fit_the_roles_and_the_server(overlay: str) -> None:
    docs = render(overlay)
    cluster = named(docs, "Cluster", "pg")
    limits = {r["name"]: r.get("connectionLimit", -1) for r in cluster["spec"]["managed"]["roles"]}
    # Per role, summed over the Deployments that log in as it (an API and its
    # worker share one). Per server: the primary's pools, or all replica pools
    # on one replica. +1: the migration.
    need: dict[str | None, int] = {}
    for deployment in service_deployments(docs):
        env = full_env(docs, _main_container(deployment))
        if "DATABASE_URL" not in env:
            continue
        role = urlsplit(env["DATABASE_URL"]).username
        hpa = named(docs, "HorizontalPodAutoscaler", deployment["metadata"]["name"])
        pool = int(env.get("DB_POOL_SIZE", KIT_POOL_SIZE))
        per_pod = pool + int(env.get("DB_MAX_OVERFLOW", KIT_MAX_OVERFLOW))
        per_pod += EXTRA_CONNECTIONS_PER_POD.get(deployment["metadata"]["name"], 0)
        need[role] = need.get(role, 1) + per_pod * hpa["spec"]["maxReplicas"]
    assert set(need) >= {"auth", "results", "bulk", "notifier"}
    problems = [
        f"role {role}: {count} connections at max scale, limit {limits.get(str(role))}"
        for role, count in need.items()
        if not 0 < count <= limits.get(role or "", 0)
    ]
    max_connections = int(cluster["spec"]["postgresql"]["parameters"]["max_connections"])
    if sum(limits.values()) + PG_RESERVED_CONNECTIONS > max_connections:
        problems.append(
            f"role limits {sum(limits.values())} exceed max_connections {max_connections}"
        )
    assert problems == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_database_roles_match_the_secrets_and_urls(overlay: str) -> None:
    docs = render(overlay)
    roles = {
        r["name"]: r["passwordSecret"]["name"]
        for r in named(docs, "Cluster", "pg")["spec"]["managed"]["roles"]
    }
    for deployment in service_deployments(docs):
        container = _main_container(deployment)
        url = env_value(container, "DATABASE_URL")
        if url is None:
            continue
        role = urlsplit(url).username
        password = next(v for v in container["env"] if v["name"] == "DB_PASSWORD")
        assert password["valueFrom"]["secretKeyRef"] == {"name": roles[role], "key": "password"}
        assert re.fullmatch(
            rf"postgresql\+asyncpg://{role}:\$\(DB_PASSWORD\)@pg-rw:5432/exam_results", url
        )


# --- secrets -------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_secret_is_rendered_made_by_an_operator_or_documented(overlay: str) -> None:
    docs = render(overlay)
    rendered = {s["metadata"]["name"] for s in of_kind(docs, "Secret")}
    documented = documented_secrets()
    missing = {
        s
        for s in referenced_secrets(docs) - rendered - operator_secrets(docs)
        if not is_documented(s, documented)
    }
    assert missing == set(), "add them to deploy/k8s/README.md's Secrets table"


def test_every_documented_secret_is_used_by_some_overlay() -> None:
    used = referenced_secrets(render("prod")) | referenced_secrets(render("dev"))
    unused = {d for d in documented_secrets() if not any(is_documented(u, {d}) for u in used)}
    assert unused == set()
