"""The one way tests and tools start a real Gunicorn server, and /proc reading.

Used by every test that needs a live server (``test_server.py``,
``test_browser.py``, ``test_overload_server.py``, ``test_hostile_uploads.py``,
``test_faults.py``, ``test_soak.py``, ``test_shutdown.py``...) and by
``devtools.fault_run``, ``devtools.soak``, ``stress`` and ``bench``. It
starts ``gunicorn -c gunicorn.conf.py wsgi:app`` exactly as ``make run`` does
(random weights, listening on 127.0.0.1 only), after migrating the database and
creating an admin user with an API token through the real CLI.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import requests
import sqlalchemy as sa

from devtools.database import reset_database

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PASSWORD = "a long enough password"
# Where the master converts ResNet50 for OpenVINO when a caller names no cache.
DEFAULT_MODEL_CACHE = ROOT / "instance" / "models"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------
# /proc


def proc_status(pid: int) -> dict[str, int]:
    """The ``Vm*`` lines of ``/proc/<pid>/status``, in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key.startswith("Vm") and rest.strip().endswith("kB"):
            values[key] = int(rest.split()[0])
    return values


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (``clear_refs`` 5); False if not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (Gunicorn workers of a master)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(part) for part in text.split()]


def tcp_socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets that process ``pid`` holds open."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        match = re.fullmatch(r"socket:\[(\d+)\]", target)
        if match:
            inodes.add(int(match.group(1)))
    return inodes


def connections_to_port(port: int) -> dict[int, int]:
    """Established TCP connections to ``port`` on this host: inode -> local port."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, remote, state, inode = parts[1], parts[2], parts[3], int(parts[9])
            if state == "01" and int(remote.rsplit(":", 1)[1], 16) == port:
                found[inode] = int(local.rsplit(":", 1)[1], 16)
    return found


# --------------------------------------------------------------------------
# The server


@dataclass
class LiveServer:
    """A running Gunicorn master with its URL, database and a user's token."""

    url: str
    process: subprocess.Popen
    env: dict[str, str]
    log_path: Path
    database_url: str
    token: str
    username: str
    started_s: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def browser(self) -> requests.Session:
        """A session signed in as the server's user through the sign-in form,
        as a browser is (pages do not take the API token)."""
        session = requests.Session()
        page = session.get(self.url + "/login", timeout=30).text
        csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
        response = session.post(
            self.url + "/login",
            data={"username": self.username, "password": PASSWORD, "csrf_token": csrf},
            timeout=30,
        )
        if response.status_code != 200 or "/login" in response.url:
            raise RuntimeError(f"sign-in failed: {response.status_code}")
        return session

    def workers(self) -> list[int]:
        """The master's current worker pids."""
        return children(self.pid)

    def wait_workers(self, count: int, timeout_s: float = 120) -> list[int]:
        """Wait until ``count`` workers exist and each logged that it is ready."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            pids = self.workers()
            ready = set(ready_workers(self.log()))
            if len(pids) == count and all(pid in ready for pid in pids):
                return pids
            time.sleep(0.1)
        raise AssertionError(f"{count} ready workers did not appear: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def engine(self) -> sa.Engine:
        """An engine on the server's database, for checking rows from outside."""
        return sa.create_engine(self.database_url)

    def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM the master and wait for it (SIGKILL after ``timeout_s``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


def ready_workers(log: str) -> list[int]:
    """Pids of the workers that logged 'ready' (model loaded and warmed)."""
    return [int(pid) for pid in re.findall(r"worker (\d+) ready: model loaded", log)]


def server_env(
    database_url: str, model_cache_dir: Path, port: int, **overrides: str
) -> dict[str, str]:
    """The environment of a test server: random weights, 2 workers, 127.0.0.1."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "reliability-secret",
        "MODEL_WEIGHTS": "random",
        "WEB_CONCURRENCY": "2",
        "GUNICORN_ACCESS_LOG": "",
        "FLASK_APP": "wsgi",
        "MODEL_CACHE_DIR": str(model_cache_dir),
        "PYTHONUNBUFFERED": "1",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        # These runs measure the server, not the limits on /predict and on
        # sign-ups (load tests register one user per simulated browser).
        "PREDICT_RATE_LIMIT": "1000000 per minute",
        "REGISTER_LIMIT_IP": "1000000 per hour",
        "REGISTER_LIMIT_TOTAL": "1000000 per hour",
    }
    env.pop("SNAPCLASS_OPENVINO_MODEL", None)
    env.update(overrides)
    return env


def flask_cli(env: dict[str, str], *args: str) -> str:
    """Run ``flask <args>`` against the server's configuration."""
    result = subprocess.run(
        [str(BIN / "flask"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if result.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout.strip()


def seconds_until_ready(
    url: str, alive: Callable[[], None], timeout_s: float, every_s: float
) -> float | None:
    """Seconds until ``url`` answers 200 on /readyz, or None after ``timeout_s``.

    ``alive`` is called before each try and raises if the server is gone, so
    that a crashed start fails at once instead of at the timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        alive()
        try:
            if requests.get(url + "/readyz", timeout=3).status_code == 200:
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(every_s)
    return None


def wait_ready(url: str, process: subprocess.Popen, timeout_s: float = 300) -> float:
    """Seconds until /readyz answers 200; raises if the master exits first."""

    def alive() -> None:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")

    seconds = seconds_until_ready(url, alive, timeout_s, every_s=0.2)
    if seconds is None:
        raise RuntimeError("server did not become ready")
    return seconds


GUNICORN_COMMAND = [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"]


def launch_gunicorn(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """``gunicorn -c gunicorn.conf.py wsgi:app`` as ``make run`` starts it,
    its output in ``log_path``; nothing is migrated or waited for."""
    with log_path.open("w") as log:
        return subprocess.Popen(
            GUNICORN_COMMAND,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def gunicorn_until_exit(
    env: dict[str, str], timeout_s: float
) -> subprocess.CompletedProcess[str]:
    """Gunicorn started as :func:`launch_gunicorn` does, for settings that must
    stop it before it serves: its exit status and output once the master exits
    (``subprocess.TimeoutExpired`` if it is still running after ``timeout_s``)."""
    return subprocess.run(
        GUNICORN_COMMAND,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def start_server(
    workdir: Path,
    database_url: str,
    *,
    model_cache_dir: Path | None = None,
    username: str = "erin",
    reset: bool = True,
    **overrides: str,
) -> LiveServer:
    """Migrate ``database_url``, create a user and token, start Gunicorn.

    ``overrides`` are extra environment settings (``RESULT_CACHE="false"``...).
    The caller stops the server with :meth:`LiveServer.stop`.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    cache = Path(model_cache_dir or DEFAULT_MODEL_CACHE)
    env = server_env(database_url, cache, free_port(), **overrides)
    if reset:
        reset_database(database_url)
    flask_cli(env, "db", "upgrade")
    flask_cli(env, "create-user", username, "--password", PASSWORD)
    # An admin: reports read the worker layout from /api/system.
    flask_cli(env, "set-admin", username)
    token = flask_cli(env, "create-token", username, "reliability").splitlines()[-1]
    log_path = workdir / f"gunicorn-{env['PORT']}.log"
    process = launch_gunicorn(env, log_path)
    url = f"http://127.0.0.1:{env['PORT']}"
    server = LiveServer(
        url=url,
        process=process,
        env=env,
        log_path=log_path,
        database_url=database_url,
        token=token,
        username=username,
    )
    try:
        server.started_s = wait_ready(url, process)
        server.wait_workers(int(env["WEB_CONCURRENCY"]))
    except BaseException:
        server.stop(timeout_s=10)
        raise
    return server
