"""make run's Prometheus (scripts/local_prometheus.py): the configuration it writes, and a
real Prometheus run on it against fake /metrics endpoints."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from local_prometheus import (
    ScrapeTarget,
    existing_rule_files,
    prometheus_config,
    start_prometheus,
    suite_targets,
)
from service_kit.testing import free_port, serve_in_thread

RULES = """groups:
  - name: local-test.rules
    rules:
      - record: job:fake_up:sum
        expr: sum by (job) (fake_up)
"""


def binary(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: `make system-deps` installs Debian's prometheus package"
    return path


def test_the_config_scrapes_every_process_and_promtool_accepts_it(tmp_path: Path) -> None:
    services = [("auth", 8001), ("results", 8002), ("bulk", 8003), ("notifier", 8004)]
    targets = suite_targets([*services, ("gateway", 8000)], {"GATEWAY_METRICS_PORT": "9100"})
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(prometheus_config(targets, rule_files=existing_rule_files()))

    check = subprocess.run(
        [binary("promtool"), "check", "config", str(config_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr

    config = yaml.safe_load(config_file.read_text())
    assert config["global"]["scrape_interval"] == "5s"
    scraped = {
        job["job_name"]: [t for group in job["static_configs"] for t in group["targets"]]
        for job in config["scrape_configs"]
    }
    # The gateway's /metrics is on its metrics port, never on its public one.
    assert scraped == {
        **{name: [f"127.0.0.1:{port}"] for name, port in services},
        "gateway": ["127.0.0.1:9100"],
    }
    assert config.get("rule_files", []) == [str(p) for p in existing_rule_files()]


def metrics_app(value: int) -> Any:
    body = f"# HELP fake_up A fake gauge.\n# TYPE fake_up gauge\nfake_up {value}\n".encode()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        status = 200 if scope["path"] == "/metrics" else 404
        headers = [(b"content-type", b"text/plain; version=0.0.4")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body if status == 200 else b""})

    return app


@pytest.fixture
def fake_processes() -> Iterator[list[ScrapeTarget]]:
    targets, stops = [], []
    for number, job in enumerate(("fake-api", "fake-worker"), start=1):
        url, stop = serve_in_thread(metrics_app(number), job)
        targets.append(ScrapeTarget(job, int(url.rsplit(":", 1)[1])))
        stops.append(stop)
    yield targets
    for stop in stops:
        stop()


def test_prometheus_scrapes_every_target_up_with_the_rules_loaded(
    tmp_path: Path, fake_processes: list[ScrapeTarget]
) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    prometheus = start_prometheus(
        binary("prometheus"),
        fake_processes,
        tmp_path / "prometheus",
        port=free_port(),
        rule_files=[rules],
        scrape_interval="1s",
    )
    try:
        deadline = time.monotonic() + 20
        health: dict[str, str] = {}
        while time.monotonic() < deadline:
            active = httpx.get(f"http://127.0.0.1:{prometheus.port}/api/v1/targets").json()
            health = {t["labels"]["job"]: t["health"] for t in active["data"]["activeTargets"]}
            if health and set(health.values()) == {"up"}:
                break
            time.sleep(0.3)
        assert health == {"fake-api": "up", "fake-worker": "up"}
        groups = httpx.get(f"http://127.0.0.1:{prometheus.port}/api/v1/rules").json()
        assert [g["name"] for g in groups["data"]["groups"]] == ["local-test.rules"]
        assert (tmp_path / "prometheus" / "data").is_dir()  # its storage is ours
    finally:
        prometheus.stop()
    assert prometheus.process.poll() is not None
