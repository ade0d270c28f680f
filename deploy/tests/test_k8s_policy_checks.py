"""The policy checks themselves catch what they are meant to catch."""

from __future__ import annotations

import copy
from pathlib import Path

from k8s_policy import env_problems, image_problems, rollout_problems, security_problems
from k8s_support import Doc, named, pod_template, render, settings_fields


def _auth() -> Doc:
    return copy.deepcopy(named(render("prod"), "Deployment", "auth"))


def test_security_check_flags_root_writable_and_escalating_containers() -> None:
    deployment = _auth()
    container = pod_template(deployment)["spec"]["containers"][0]
    container["securityContext"] = {"runAsUser": 0}
    problems = " ".join(security_problems(deployment))
    for expected in ("runAsUser", "allowPrivilegeEscalation", "root filesystem", "capabilities"):
        assert expected in problems


def test_rollout_check_flags_fixed_replicas_unavailability_and_no_pre_stop() -> None:
    deployment = _auth()
    deployment["spec"]["replicas"] = 3
    deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = 1
    del pod_template(deployment)["spec"]["containers"][0]["lifecycle"]
    problems = " ".join(rollout_problems(deployment))
    assert "spec.replicas" in problems and "maxUnavailable" in problems and "preStop" in problems


def test_image_check_flags_latest_untagged_and_unreleased_images() -> None:
    for image in (
        "redis:latest",
        "redis",
        "ghcr.io/exam-results/auth:main",
        "localhost:5000/redis",
    ):
        deployment = _auth()
        pod_template(deployment)["spec"]["containers"][0]["image"] = image
        assert image_problems(deployment), image


def test_env_check_allows_secret_helpers_only_when_they_feed_another_variable() -> None:
    known = {"DATABASE_URL"}
    helper = {
        "name": "DB_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}},
    }
    url = {"name": "DATABASE_URL", "value": "postgresql+asyncpg://a:$(DB_PASSWORD)@h/db"}
    assert env_problems({"name": "c", "env": [helper, url]}, set(), known) == []
    assert env_problems({"name": "c", "env": [helper]}, set(), known) != []
    literal = {"name": "DB_PASSWORD", "value": "x"}
    assert env_problems({"name": "c", "env": [literal, url]}, set(), known) != []
    assert env_problems({"name": "c", "env": []}, {"UNKNOWN_SETTING"}, known) != []
    assert env_problems(
        {"name": "c", "env": [], "envFrom": [{"secretRef": {"name": "s"}}]}, set(), known
    )
    assert env_problems({"name": "c", "env": []}, {"OTEL_EXPORTER_OTLP_ENDPOINT"}, known) == []


def test_settings_reader_uses_aliases_and_skips_class_vars(tmp_path: Path) -> None:
    source = tmp_path / "settings.py"
    source.write_text(
        "from typing import ClassVar\n"
        "class S(KitSettings):\n"
        "    secrets: ClassVar[frozenset[str]] = frozenset()\n"
        "    plain_field: int = 1\n"
        "    replica: str = Field('', validation_alias=AliasChoices('X_REPLICA', 'REPLICA'))\n"
        "class NotSettings:\n"
        "    ignored: int = 1\n"
    )
    assert settings_fields(source) == {"PLAIN_FIELD", "X_REPLICA", "REPLICA"}
