"""Every process of the e2e suite scraped at its /metrics: the one list of targets
the metrics tests share (test_metrics_exposition, test_metrics_no_drift)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from conftest import E2E
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@dataclass(frozen=True)
class Scrape:
    process: str
    """Which process answered, e.g. ``results`` or ``bulk-worker-4242``."""
    service: str
    """The service it belongs to (a bulk worker belongs to ``bulk``)."""
    text: str
    content_type: str

    def samples(self) -> list[Sample]:
        return [s for f in text_string_to_metric_families(self.text) for s in f.samples]


def metrics_targets(e2e: E2E) -> list[tuple[str, str, str]]:
    """(process, service, URL) of every process of the suite: each API on its own port,
    the gateway on its metrics port, each bulk worker on its worker port."""
    targets = []
    for running in e2e.suite.services:
        name = running.spec.name
        if name == "gateway":
            url = f"http://127.0.0.1:{e2e.env['GATEWAY_METRICS_PORT']}/metrics"
        else:
            url = f"{e2e.suite.url(name)}/metrics"
        targets.append((name, name, url))
    for process in e2e.bulk_workers.alive():
        url = f"http://127.0.0.1:{e2e.bulk_workers.ports[process.pid]}/metrics"
        targets.append((f"bulk-worker-{process.pid}", "bulk", url))
    return targets


def scrape_all(e2e: E2E) -> list[Scrape]:
    """One scrape of every target; a process that does not answer 200 fails the test."""
    found = []
    for process, service, url in metrics_targets(e2e):
        response = httpx.get(url, timeout=10)
        assert response.status_code == 200, (process, url, response.status_code)
        found.append(
            Scrape(process, service, response.text, response.headers.get("content-type", ""))
        )
    return found
