"""wrk, the C load generator both HTTP benchmarks use, and the parsing of its report.

A load generator on the same two cores as the system it measures takes CPU
from it: wrk costs a few microseconds per request where a Python client costs
close to a millisecond, so figures taken with it are the system's own.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def ensure_packages(wanted: dict[str, str], install: bool) -> dict[str, str | None]:
    """Tool -> its path, installing the missing ones (tool -> Debian package) when root."""
    missing = [pkg for tool, pkg in wanted.items() if not shutil.which(tool)]
    if missing and install and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing {' '.join(missing)} with apt-get ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, timeout=300, **quiet)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", *missing],
            env=env,
            check=False,
            timeout=600,
            **quiet,
        )
    found: dict[str, str | None] = {tool: shutil.which(tool) for tool in wanted}
    for tool in found:
        if found[tool] is None and Path(f"/usr/sbin/{tool}").exists():
            found[tool] = f"/usr/sbin/{tool}"
    return found


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    requests: int
    cpu_seconds: float
    """CPU (user + system) wrk itself spent."""


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _field(pattern: str, out: str) -> str:
    match = re.search(pattern, out)
    if match is None:
        raise RuntimeError(f"wrk printed no {pattern!r}:\n{out}")
    return match.group(1)


def run_wrk(
    wrk: str,
    url: str,
    *,
    connections: int,
    seconds: float,
    headers: dict[str, str] | None = None,
    script: Path | None = None,
) -> WrkResult:
    """One closed-loop run of ``wrk -t1`` (one thread: the machine has two cores)."""
    argv = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    if script is not None:
        argv += ["-s", str(script)]
    before = os.times()
    out = subprocess.run(
        [*argv, url], capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return WrkResult(
        rps=float(_field(r"Requests/sec:\s+([\d.]+)", out)),
        p50_ms=_ms(_field(r"\s50%\s+(\S+)", out)),
        p99_ms=_ms(_field(r"\s99%\s+(\S+)", out)),
        non_2xx=int(bad.group(1)) if bad else 0,
        requests=int(_field(r"(\d+) requests in", out)),
        cpu_seconds=cpu,
    )


def post_script(directory: Path, body: str, content_type: str = "application/json") -> Path:
    """A wrk Lua script that sends every request as a POST of ``body``."""
    script = directory / "post.lua"
    lua_body = body.replace("\\", "\\\\").replace('"', '\\"')
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = "{lua_body}"\n'
        f'wrk.headers["Content-Type"] = "{content_type}"\n'
    )
    return script
