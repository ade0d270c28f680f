"""``make run``: checks the local servers, migrates, starts every service and a Prometheus
scraping them, stops all on Ctrl-C.

A backing server that does not answer at its default local address gets a private
instance under ``.run/<name>/`` (installed from Debian's packages when absent), see
private_servers.py; the Prometheus is local_prometheus.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent))

from local_prometheus import (
    DEFAULT_PORT,
    SCRAPE_INTERVAL,
    existing_rule_files,
    start_prometheus,
    suite_targets,
)
from localsuite import ROOT, SERVICES, Suite, check_dependencies, start_suite
from private_servers import (
    URL_SETTINGS,
    PrivateServer,
    install_packages,
    server_binary,
    start_private_servers,
    stop_all,
)

RUN_DIR = ROOT / ".run"

DEV_DEFAULTS = {
    "ENVIRONMENT": "development",
    "JWT_SIGNING_KEY_FILE": str(ROOT / ".run" / "keys" / "jwt-signing.pem"),
    "CORS_ALLOW_ORIGINS": "http://localhost:5173",
    "LOG_JSON": "true",
    "SUITE_LOG_TO_TERMINAL": "1",
}


def main() -> int:
    overrides = {k: v for k, v in DEV_DEFAULTS.items() if k not in os.environ}
    problems = check_dependencies({**os.environ, **overrides})
    # A server configured on purpose (its URL set) must be fixed, not replaced; one
    # expected at its default local address gets a private instance under .run/.
    configured = {n: p for n, p in problems.items() if URL_SETTINGS[n] in os.environ}
    if configured:
        print("Cannot start: a backing server is missing.\n", file=sys.stderr)
        for problem in configured.values():
            print("  - " + problem, file=sys.stderr)
        return 2
    stopping = False

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    private: list[PrivateServer] = []
    portal: PrivateServer | None = None
    suite: Suite | None = None
    try:
        if problems:
            print(f"not answering at the default address: {', '.join(problems)}", flush=True)
            private = start_private_servers(problems, RUN_DIR)
            for server in private:
                overrides.update(server.settings)
        suite = start_suite(overrides, log_dir=None)
        portal = start_portal(suite)
        print_summary(suite, private, portal)
        while not stopping:
            for svc in suite.services:
                if svc.process.poll() is not None:
                    print(
                        f"{svc.spec.name} exited with {svc.process.returncode}; stopping all",
                        file=sys.stderr,
                    )
                    return 1
            for server in private:
                if server.process.poll() is not None:
                    print(f"the private {server.name} exited; stopping all", file=sys.stderr)
                    return 1
            if portal is not None and portal.process.poll() is not None:
                print(
                    f"Prometheus exited ({RUN_DIR / 'prometheus' / 'prometheus.log'}); "
                    "the suite goes on without it",
                    file=sys.stderr,
                )
                portal = None
            time.sleep(0.5)
        return 0
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"Cannot start: {exc}", file=sys.stderr)
        return 2
    finally:
        print("stopping...", flush=True)
        if portal is not None:
            portal.stop()
        if suite is not None:
            suite.stop()
        stop_all(private)


def start_portal(suite: Suite) -> PrivateServer | None:
    """Prometheus scraping every process; the suite runs on without it if it cannot start."""
    try:
        install_packages(["prometheus"])
        binary = server_binary("prometheus")
        if binary is None:
            raise RuntimeError("the prometheus package installed no prometheus binary")
        targets = suite_targets(((s.spec.name, s.port) for s in suite.services), suite.env)
        return start_prometheus(binary, targets, RUN_DIR / "prometheus")
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        print(f"Prometheus did not start, the suite runs without it: {exc}", file=sys.stderr)
        return None


def print_summary(suite: Suite, private: list[PrivateServer], portal: PrivateServer | None) -> None:
    gateway = os.environ.get("GATEWAY_PORT", "8000")
    print("\nThe suite is up:")
    print(f"  gateway   http://127.0.0.1:{gateway}   (API under /api/v1, /openapi.json)")
    metrics_port = suite.env.get("GATEWAY_METRICS_PORT", "9100")
    for svc in suite.services:
        if svc.spec.name == "gateway":
            print(f"  gateway   metrics on http://127.0.0.1:{metrics_port}/metrics")
            continue
        print(f"  {svc.spec.name:<9} http://127.0.0.1:{svc.port}   (/healthz /readyz /metrics)")
    missing = [s.name for s in SERVICES if not s.exists()]
    if missing:
        print(f"  not built yet: {', '.join(missing)} (the gateway answers 503 for them)")
    if portal is not None:
        rules = "rules loaded" if existing_rule_files() else "no rules file yet"
        if portal.port != DEFAULT_PORT:
            print(f"  (port {DEFAULT_PORT} is taken: Prometheus listens on {portal.port})")
        print(
            f"  prometheus http://127.0.0.1:{portal.port}   (/targets: every process, "
            f"scraped every {SCRAPE_INTERVAL}; /rules, /alerts: {rules})"
        )
    for server in private:
        setting = URL_SETTINGS[server.name]
        url = server.settings[setting]
        print(f"  private {server.name:<10} {url}   (under {server.directory}, as {setting})")
    print(
        f"  admin: {os.environ.get('ADMIN_EMAIL', 'admin@example.edu')} / "
        f"{os.environ.get('ADMIN_PASSWORD', 'admin-dev-password')}"
    )
    print("Ctrl-C stops everything.\n", flush=True)


if __name__ == "__main__":
    sys.exit(main())
