"""Dashboards and rules as code: what is committed is a fresh render, the rules are
valid and unit-tested with promtool, and both overlays ship them (a ConfigMap per
dashboard for Grafana's sidecar, one PrometheusRule for the operator).

That every metric they use is exported is proven against the running suite by
tests/e2e/test_metrics_no_drift.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from k8s_support import OVERLAYS, ROOT, named, of_kind, render, schema_errors, schema_path

OBSERVABILITY = ROOT / "deploy" / "observability"
sys.path.insert(0, str(OBSERVABILITY))

import references  # noqa: E402
import render as assets  # noqa: E402

PROMETHEUS = OBSERVABILITY / "prometheus"
RULES_TEST = PROMETHEUS / "rules_test.yml"
DOCS = ROOT / "docs" / "observability.md"
SEVERITIES = {"page", "ticket"}
# kubectl apply keeps the whole object in an annotation limited to 256 KiB.
CONFIGMAP_LIMIT = 256 * 1024 - 4096


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: `make system-deps` installs Debian's prometheus")
    return found


def alerts() -> list[dict[str, object]]:
    return [rule for rule in references.rules() if "alert" in rule]


def test_committed_dashboards_and_prometheus_rule_are_a_fresh_render() -> None:
    assert assets.stale() == [], "run `make dashboards` and commit the result"


def test_promtool_checks_the_rules_file() -> None:
    proc = subprocess.run(
        [promtool(), "check", "rules", str(references.RULES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    proc = subprocess.run(
        [promtool(), "test", "rules", RULES_TEST.name],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_fires_in_a_unit_test_and_stays_silent_in_another() -> None:
    cases = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))["tests"]
    fired: set[str] = set()
    silent: set[str] = set()
    for case in cases:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {str(rule["alert"]) for rule in alerts()}
    assert names - fired == set(), "alerts no unit test sees firing"
    assert names - silent == set(), "alerts no unit test sees silent"


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of the headings: lower case, punctuation dropped, spaces to '-'."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


def test_every_alert_has_a_severity_and_a_runbook_section_in_the_docs() -> None:
    anchors = _anchors(DOCS.read_text(encoding="utf-8"))
    for rule in alerts():
        labels = rule.get("labels", {})
        annotations = rule.get("annotations", {})
        assert isinstance(labels, dict) and isinstance(annotations, dict)
        assert labels.get("severity") in SEVERITIES, rule["alert"]
        assert {"summary", "description", "runbook"} <= annotations.keys(), rule["alert"]
        page, _, anchor = str(annotations["runbook"]).partition("#")
        assert page == "docs/observability.md", rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: no heading #{anchor} in {DOCS.name}"


def test_every_expression_parses_and_every_recorded_series_has_its_rule() -> None:
    refs = references.references()  # parses every dashboard query and rule
    assert refs
    recorded = references.recorded()
    undefined = sorted({r.metric for r in refs if ":" in r.metric and r.metric not in recorded})
    assert undefined == []
    used = {r.metric for r in refs}
    assert recorded - used == set(), "recording rules nothing reads"


def test_the_dashboards_are_grafana_models_with_unique_ids_on_a_chosen_datasource() -> None:
    models = {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(assets.DASHBOARDS_DIR.glob("*.json"))
    }
    assert set(models) == {"overview", "gateway", "auth", "results", "bulk", "notifier"}
    uids = [model["uid"] for model in models.values()]
    assert len(set(uids)) == len(uids)
    for name, model in models.items():
        variables = {v["name"]: v for v in model["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        ids = [panel["id"] for panel in model["panels"]]
        assert len(set(ids)) == len(ids), name
        for panel in model["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"], f"{name} / {panel['title']} has no query"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_dashboard_ships_as_a_configmap_for_the_grafana_sidecar(overlay: str) -> None:
    docs = render(overlay)
    shipped = {
        key: value
        for cm in of_kind(docs, "ConfigMap")
        if cm["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
        for key, value in cm["data"].items()
    }
    committed = {
        path.name: path.read_text(encoding="utf-8")
        for path in sorted(assets.DASHBOARDS_DIR.glob("*.json"))
    }
    assert shipped == committed
    for cm in of_kind(docs, "ConfigMap"):
        if cm["metadata"].get("labels", {}).get("grafana_dashboard") == "1":
            # One dashboard per ConfigMap, a stable name (no hash suffix), small
            # enough for `kubectl apply`'s last-applied annotation.
            (key,) = cm["data"]
            assert cm["metadata"]["name"] == f"grafana-dashboard-{Path(key).stem}"
            assert len(json.dumps(cm)) < CONFIGMAP_LIMIT


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_prometheus_rule_holds_exactly_the_rules_file_and_matches_its_schema(
    overlay: str,
) -> None:
    rule = named(render(overlay), "PrometheusRule", assets.RULE_NAME)
    assert rule["spec"]["groups"] == references.rule_groups()
    assert schema_path(rule).exists()
    assert schema_errors(rule) == []


def test_promtool_accepts_the_prometheus_rule_as_shipped(tmp_path: Path) -> None:
    """What the operator loads is the PrometheusRule's groups, after kustomize."""
    rule = named(render("prod"), "PrometheusRule", assets.RULE_NAME)
    shipped = tmp_path / "shipped.yml"
    shipped.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}), encoding="utf-8")
    proc = subprocess.run(
        [promtool(), "check", "rules", str(shipped)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
