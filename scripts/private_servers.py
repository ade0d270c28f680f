"""Private PostgreSQL, Redis and RabbitMQ for ``make run`` on a machine that lacks them.

When a backing server does not answer at its default local address,
``make run`` installs its Debian package if the server's binary is absent
(scripts/ensure_system_packages.sh, with the package's own service kept from
starting) and starts a private instance of its own under ``.run/<name>/`` on a
free port, as a child process: its own data directory, configuration and
logs, never the system's service or its files. The services are pointed at it
through ``DATABASE_URL``, ``REDIS_URL`` and ``RABBITMQ_URL``; the instance stops
when ``make run`` stops (and one left behind by a killed ``make run`` is stopped
at the next start).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENSURE_PACKAGES = ROOT / "scripts" / "ensure_system_packages.sh"
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")

#: The Debian package of each server, and the systemd unit it brings.
PACKAGES = {
    "postgresql": "postgresql",
    "redis": "redis-server",
    "rabbitmq": "rabbitmq-server",
    "prometheus": "prometheus",
}
#: The setting that points the services at each backing server.
URL_SETTINGS = {"postgresql": "DATABASE_URL", "redis": "REDIS_URL", "rabbitmq": "RABBITMQ_URL"}
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- binaries and packages -----------------------------------------------------------


def postgres_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb and postgres."""
    found = [
        Path(p).parent
        for p in glob.glob("/usr/lib/postgresql/*/bin/postgres")
        if (Path(p).parent / "initdb").exists()
    ]
    found.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found else None


def server_binary(name: str) -> str | None:
    """The server's executable, or None when its package must be installed."""
    if name == "postgresql":
        bin_dir = postgres_bin_dir()
        return str(bin_dir / "postgres") if bin_dir else None
    if name == "redis":
        return shutil.which("redis-server") or _executable("/usr/bin/redis-server")
    if name == "rabbitmq":
        # Debian's /usr/sbin wrapper switches to the rabbitmq user (su) and logs to
        # /var/log; the script behind it runs the broker as whoever starts it.
        return _executable(str(RABBITMQ_SERVER))
    if name == "prometheus":
        return shutil.which("prometheus") or _executable("/usr/bin/prometheus")
    raise KeyError(name)


def _executable(path: str) -> str | None:
    return path if os.access(path, os.X_OK) else None


def _as_root(command: list[str]) -> list[str]:
    return command if os.geteuid() == 0 else ["sudo", *command]


def install_packages(names: Iterable[str]) -> None:
    """Installs the Debian package of every named server whose binary is absent.

    No package's own service is started: while apt-get runs, a policy-rc.d that
    answers 101 ("action forbidden") keeps invoke-rc.d from starting it (one
    already there is left as it is), and on a systemd machine the units the
    install enabled are disabled again, so a reboot does not start them either.
    """
    missing = [PACKAGES[n] for n in dict.fromkeys(names) if server_binary(n) is None]
    if not missing:
        return
    print(f"installing Debian packages: {' '.join(missing)}", flush=True)
    made_policy = not POLICY_RC_D.exists()
    if made_policy:
        script = f"printf '#!/bin/sh\\nexit 101\\n' > {POLICY_RC_D} && chmod 755 {POLICY_RC_D}"
        subprocess.run(_as_root(["sh", "-c", script]), check=True)
    try:
        subprocess.run(["bash", str(ENSURE_PACKAGES), *missing], check=True)
    finally:
        if made_policy:
            subprocess.run(_as_root(["rm", "-f", str(POLICY_RC_D)]), check=False)
    if Path("/run/systemd/system").is_dir():
        subprocess.run(
            _as_root(["systemctl", "disable", "--quiet", *missing]),
            check=False,
            stderr=subprocess.DEVNULL,
        )


# -- a running private server --------------------------------------------------------


@dataclass
class PrivateServer:
    """A server this process started; ``settings`` point the services at it."""

    name: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes]
    settings: dict[str, str]
    stop_signal: int = signal.SIGTERM
    after_stop: list[Callable[[], None]] = field(default_factory=list)

    def stop(self, timeout: float = 30.0) -> None:
        """Stops the server and every process of its session; waits for them."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(self.stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        # Whatever it started in its session (Erlang's helpers, postgres' backends)
        # goes with it; a leader that did not stop in time is killed.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        for action in self.after_stop:
            with contextlib.suppress(Exception):
                action()
        (self.directory / "server.pid").unlink(missing_ok=True)


def _process_state(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process from /proc, None when there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], fields[19]


def stop_leftover(directory: Path) -> None:
    """Stops the instance a killed ``make run`` left running in ``directory``.

    The pid file names the process and its start time, so a pid reused since by an
    unrelated process is left alone.
    """
    pid_file = directory / "server.pid"
    try:
        pid_text, started = pid_file.read_text().split()[:2]
        pid = int(pid_text)
    except (OSError, ValueError):
        pid_file.unlink(missing_ok=True)
        return
    state = _process_state(pid)
    if state is not None and state[1] == started:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            state = _process_state(pid)
            if state is None or state[0] in ("Z", "X"):
                break
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)


def launch(
    name: str,
    directory: Path,
    command: list[str],
    *,
    env: dict[str, str] | None = None,
    user: str | None = None,
) -> subprocess.Popen[bytes]:
    log = (directory / f"{name}.log").open("ab")
    try:
        process = subprocess.Popen(
            command,
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches make run only; it stops us in order
            user=user,
            group=user,
            extra_groups=[] if user else None,
        )
    finally:
        log.close()
    state = _process_state(process.pid)
    (directory / "server.pid").write_text(f"{process.pid} {state[1] if state else '-'}\n")
    return process


def wait_ready(server: PrivateServer, ready: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        if ready():
            return
        time.sleep(0.25)
    exited = server.process.poll()
    server.stop()
    log = server.directory / f"{server.name}.log"
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log.exists() else ""
    why = f"exited with {exited}" if exited is not None else f"was not ready in {timeout:.0f}s"
    raise RuntimeError(f"private {server.name} on port {server.port} {why}; {log}:\n{tail}")


def prepare(directory: Path, owner: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if owner:
        # The server's user must be able to walk down to its directory: a parent of
        # ours that others cannot enter gets o+x (enter, not list), and says so.
        for parent in directory.parents:
            mode = parent.stat().st_mode
            if mode & 0o001 == 0 and parent.stat().st_uid == os.geteuid():
                parent.chmod(mode | 0o001)
                print(f"made {parent} enterable by others (o+x) for the {owner} user")
    stop_leftover(directory)
    if owner:
        entry = pwd.getpwnam(owner)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    return directory


# -- PostgreSQL ----------------------------------------------------------------------


def start_private_postgres(
    directory: Path, port: int | None = None, timeout: float = 60.0
) -> PrivateServer:
    """initdb (once, trust authentication, superuser ``postgres``) and postgres on
    127.0.0.1:``port``, its socket in ``directory``. PostgreSQL refuses to run as
    root, so under root it runs as the ``postgres`` user the package created."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL's server binaries are not installed")
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        try:
            pwd.getpwnam(user)
        except KeyError as exc:
            raise RuntimeError("running as root needs the postgres user to run PostgreSQL") from exc
    prepare(directory, user)
    data = directory / "data"
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    if user:
        env["HOME"] = str(directory)
    if not (data / "PG_VERSION").exists():
        if data.exists():
            shutil.rmtree(data)  # a half-made cluster from an interrupted initdb
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            cwd=directory,
            env=env,
            user=user,
            group=user,
            extra_groups=[] if user else None,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    port = port or free_port()
    process = launch(
        "postgresql",
        directory,
        [
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(directory),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",  # a development database: speed over crash safety
            "-c",
            "max_connections=200",
        ],
        env=env,
        user=user,
    )
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    server = PrivateServer(
        "postgresql",
        port,
        directory,
        process,
        {"DATABASE_URL": url.replace("postgresql://", "postgresql+asyncpg://", 1)},
        stop_signal=signal.SIGINT,  # "fast" shutdown: ends sessions, no waiting for them
    )
    wait_ready(server, lambda: _postgres_answers(url), timeout)
    return server


def _postgres_answers(url: str) -> bool:
    import asyncpg

    async def probe() -> bool:
        try:
            conn = await asyncio.wait_for(asyncpg.connect(url), 2)
        except Exception:
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


# -- Redis ---------------------------------------------------------------------------


def start_private_redis(
    directory: Path, port: int | None = None, timeout: float = 20.0
) -> PrivateServer:
    """redis-server on 127.0.0.1:``port`` keeping nothing on disk."""
    binary = server_binary("redis")
    if binary is None:
        raise RuntimeError("redis-server is not installed")
    prepare(directory)
    port = port or free_port()
    process = launch(
        "redis",
        directory,
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ],
    )
    url = f"redis://127.0.0.1:{port}/0"
    server = PrivateServer("redis", port, directory, process, {"REDIS_URL": url})
    wait_ready(server, lambda: _redis_answers(url), timeout)
    return server


def _redis_answers(url: str) -> bool:
    from redis import Redis

    client = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


# -- RabbitMQ ------------------------------------------------------------------------


def start_private_rabbitmq(
    directory: Path, port: int | None = None, timeout: float = 90.0
) -> PrivateServer:
    """A RabbitMQ node ``rabbit-private@localhost`` on 127.0.0.1:``port``.

    Nothing of the system's broker is shared: its own configuration (the
    system's /etc/rabbitmq files may name port 5672 or another node name),
    Erlang cookie, Mnesia and log directories, distribution port and its own
    epmd on a free port, which is stopped with it. No plugin is enabled.
    """
    if server_binary("rabbitmq") is None:
        raise RuntimeError(f"{RABBITMQ_SERVER} is not installed")
    prepare(directory)
    port = port or free_port()
    epmd_port, dist_port = free_port(), free_port()
    (directory / "rabbitmq.conf").write_text(
        f"listeners.tcp.local = 127.0.0.1:{port}\n"
        "loopback_users.guest = true\n"
        "log.console = false\n"
        "log.file.level = info\n"
    )
    (directory / "rabbitmq-env.conf").write_text("# empty: the settings come from make run\n")
    (directory / "enabled_plugins").write_text("[].\n")
    env = {
        **os.environ,
        "HOME": str(directory),  # its own .erlang.cookie
        "RABBITMQ_NODENAME": "rabbit-private@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "ERL_EPMD_PORT": str(epmd_port),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(directory / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(directory / "rabbitmq-env.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
        "RABBITMQ_LOG_BASE": str(directory / "log"),
        "RABBITMQ_PID_FILE": str(directory / "rabbit.pid"),
        "RABBITMQ_SERVER_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }
    env.pop("ERL_FLAGS", None)
    env.pop("RUNNING_UNDER_SYSTEMD", None)
    process = launch("rabbitmq", directory, [str(RABBITMQ_SERVER)], env=env)
    url = f"amqp://guest:guest@127.0.0.1:{port}/"
    server = PrivateServer(
        "rabbitmq",
        port,
        directory,
        process,
        {"RABBITMQ_URL": url},
        after_stop=[lambda: _stop_epmd(epmd_port)],
    )
    wait_ready(server, lambda: _rabbitmq_answers(url, port), timeout)
    return server


def _stop_epmd(port: int) -> None:
    epmd = shutil.which("epmd") or next(iter(glob.glob("/usr/lib/erlang/erts-*/bin/epmd")), None)
    if epmd:
        subprocess.run(
            [epmd, "-port", str(port), "-kill"],
            check=False,
            timeout=10,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _rabbitmq_answers(url: str, port: int) -> bool:
    import aio_pika

    if not _accepts(port):  # aio_pika logs every refused connection
        return False

    async def probe() -> bool:
        try:
            connection = await asyncio.wait_for(aio_pika.connect(url), 3)
        except Exception:
            return False
        await connection.close()
        return True

    return asyncio.run(probe())


# -- what make run calls -------------------------------------------------------------

STARTERS: dict[str, Callable[[Path], PrivateServer]] = {
    "postgresql": start_private_postgres,
    "redis": start_private_redis,
    "rabbitmq": start_private_rabbitmq,
}


def start_private_servers(names: Iterable[str], run_dir: Path) -> list[PrivateServer]:
    """Installs what is missing and starts a private instance of each named server
    under ``run_dir/<name>``; on failure, stops those already started."""
    names = list(dict.fromkeys(names))
    install_packages(names)
    started: list[PrivateServer] = []
    try:
        for name in names:
            print(f"starting a private {name} under {run_dir / name} ...", flush=True)
            started.append(STARTERS[name](run_dir / name))
    except BaseException:
        stop_all(started)
        raise
    return started


def stop_all(servers: Iterable[PrivateServer]) -> None:
    for server in reversed(list(servers)):
        server.stop()


if __name__ == "__main__":
    import sys

    # `python scripts/private_servers.py install prometheus ...`: what make system-deps
    # runs, so the tests' servers are installed the same way, their services not started.
    if len(sys.argv) < 3 or sys.argv[1] != "install" or not set(sys.argv[2:]) <= set(PACKAGES):
        sys.exit(f"usage: {sys.argv[0]} install {{{','.join(PACKAGES)}}}...")
    install_packages(sys.argv[2:])
