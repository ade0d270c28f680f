"""auth's hashing pool and admission budget fit its pod (docs/adr/0020)."""

from __future__ import annotations

import pytest
from k8s_support import OVERLAYS, full_env, named, pod_template, render

# CPU left to the event loop (probes, refreshes, reads, the 503s of shed sign-ins)
# next to hashing threads that each keep a CPU busy during a sign-in storm.
EVENT_LOOP_MILLICPU = 500


def _millicpu(quantity: str) -> int:
    return int(quantity[:-1]) if quantity.endswith("m") else int(float(quantity) * 1000)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_auth_hashing_threads_leave_the_event_loop_a_share_of_the_cpu_limit(
    overlay: str,
) -> None:
    docs = render(overlay)
    (container,) = pod_template(named(docs, "Deployment", "auth"))["spec"]["containers"]
    env = full_env(docs, container)
    workers = int(env["PASSWORD_HASH_WORKERS"])
    limit = _millicpu(container["resources"]["limits"]["cpu"])

    # One thread at least (dev's 500m limit); more only while each has a whole CPU
    # of the limit and the event loop keeps its share.
    assert workers == 1 or workers * 1000 + EVENT_LOOP_MILLICPU <= limit


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_auth_hashing_budget_is_set_and_well_inside_the_probe_timeout(overlay: str) -> None:
    docs = render(overlay)
    (container,) = pod_template(named(docs, "Deployment", "auth"))["spec"]["containers"]
    env = full_env(docs, container)
    budget = float(env["PASSWORD_HASH_QUEUE_BUDGET_SECONDS"])

    # A login waits at most about the budget; the probe never waits behind hashing at all,
    # but a budget near the probe's timeout would mean a badly sized pool.
    assert 0 < budget < container["readinessProbe"]["timeoutSeconds"]
    assert int(env["PASSWORD_HASH_MAX_QUEUE"]) >= 1
