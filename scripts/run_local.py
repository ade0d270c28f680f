"""``make run``: checks the local servers, migrates, starts every service, stops all on Ctrl-C."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent))

from localsuite import ROOT, SERVICES, check_dependencies, start_suite

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
    if problems:
        print("Cannot start: a backing server is missing.\n", file=sys.stderr)
        for problem in problems:
            print("  - " + problem, file=sys.stderr)
        return 2
    stopping = False

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    suite = start_suite(overrides, log_dir=None)
    try:
        gateway = os.environ.get("GATEWAY_PORT", "8000")
        print("\nThe suite is up:")
        print(f"  gateway   http://127.0.0.1:{gateway}   (API under /api/v1, /openapi.json)")
        metrics_port = os.environ.get("GATEWAY_METRICS_PORT", "9100")
        for svc in suite.services:
            if svc.spec.name == "gateway":
                print(f"  gateway   metrics on http://127.0.0.1:{metrics_port}/metrics")
                continue
            print(f"  {svc.spec.name:<9} http://127.0.0.1:{svc.port}   (/healthz /readyz /metrics)")
        missing = [s.name for s in SERVICES if not s.exists()]
        if missing:
            print(f"  not built yet: {', '.join(missing)} (the gateway answers 503 for them)")
        print(
            f"  admin: {os.environ.get('ADMIN_EMAIL', 'admin@example.edu')} / "
            f"{os.environ.get('ADMIN_PASSWORD', 'admin-dev-password')}"
        )
        print("Ctrl-C stops everything.\n", flush=True)
        while not stopping:
            for svc in suite.services:
                if svc.process.poll() is not None:
                    print(
                        f"{svc.spec.name} exited with {svc.process.returncode}; stopping all",
                        file=sys.stderr,
                    )
                    return 1
            time.sleep(0.5)
        return 0
    finally:
        print("stopping...", flush=True)
        suite.stop()


if __name__ == "__main__":
    sys.exit(main())
