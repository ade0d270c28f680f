"""CORS proven in a real browser: headless Chromium logs in through the gateway
from a page on an allowed origin, and is blocked from a refused origin."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from queue import Empty, Queue

import pytest
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, E2E

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PAGE = """<!doctype html>
<html><body><p id="out">running</p>
<script>
async function report(outcome) {
  document.getElementById("out").textContent = JSON.stringify(outcome);
  await fetch("/outcome", {method: "POST", body: JSON.stringify(outcome)});
}
(async () => {
  try {
    const response = await fetch("%(gateway)s/api/v1/auth/login", {
      method: "POST",
      credentials: "include",
      headers: {"Content-Type": "application/json", "X-Request-ID": "browser-test"},
      body: JSON.stringify({email: "%(email)s", password: "%(password)s"}),
    });
    const body = await response.json();
    await report({ok: true, status: response.status, has_token: !!body.access_token,
                  request_id: response.headers.get("X-Request-ID")});
  } catch (error) {
    await report({ok: false, error: String(error)});
  }
})();
</script></body></html>
"""


def serve_page(port: int, html: str, outcomes: Queue[dict[str, object]]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            outcomes.put(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def browser_outcome(e2e: E2E) -> Iterator[object]:
    if CHROMIUM is None:
        pytest.fail(
            "chromium is not installed: `make test` installs it (scripts/ensure_system_packages.sh)"
        )

    def run(origin_name: str) -> dict[str, object]:
        outcomes: Queue[dict[str, object]] = Queue()
        html = PAGE % {"gateway": e2e.gateway, "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        port = e2e.page_origins[origin_name]
        server = serve_page(port, html, outcomes)
        profile = tempfile.mkdtemp(prefix="chromium-e2e-")
        browser = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                f"http://127.0.0.1:{port}/",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            return outcomes.get(timeout=45)
        except Empty:
            pytest.fail(f"the browser page on the {origin_name} origin reported nothing")
        finally:
            browser.kill()
            browser.wait(10)
            server.shutdown()
            server.server_close()
            shutil.rmtree(profile, ignore_errors=True)

    yield run


def test_browser_on_allowed_origin_logs_in(browser_outcome) -> None:  # type: ignore[no-untyped-def]
    outcome = browser_outcome("allowed")
    assert outcome == {"ok": True, "status": 200, "has_token": True, "request_id": "browser-test"}


def test_browser_on_refused_origin_is_blocked(browser_outcome) -> None:  # type: ignore[no-untyped-def]
    outcome = browser_outcome("refused")
    assert outcome["ok"] is False
    assert "Failed to fetch" in str(outcome["error"])
