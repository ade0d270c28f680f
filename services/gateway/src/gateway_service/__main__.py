"""``python -m gateway_service``: serves the gateway on GATEWAY_HOST:GATEWAY_PORT."""

from __future__ import annotations

import os
import shutil
import tempfile

from service_kit.http_protocol import HttpLimits
from service_kit.serve import serve

from gateway_service.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    metrics_dir = None
    if settings.gateway_workers > 1 and settings.gateway_metrics_port:
        # Workers are spawned fresh and inherit this variable, so each writes its
        # series to files here; this process serves their merge on the metrics port.
        metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        from gateway_service.metrics import MetricsServer, multiprocess_registry

        MetricsServer(
            settings.gateway_metrics_host, settings.gateway_metrics_port, multiprocess_registry()
        ).start()
    try:
        serve(
            "gateway_service.main:create_app",
            host=settings.gateway_host,
            port=settings.gateway_port,
            limits=HttpLimits.from_settings(settings),
            workers=settings.gateway_workers,
        )
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
