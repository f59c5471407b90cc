"""The one way tests and scripts start a real Gunicorn server, and /proc reading.

Used by every test that needs a live server (``test_server.py``,
``test_browser.py``, ``test_overload_server.py``, ``test_hostile_uploads.py``,
``test_faults.py``, ``test_soak.py``, ``test_shutdown.py``...) and by
``scripts/fault_run.py``, ``scripts/soak.py`` and ``bench/bench.py``. It
starts ``gunicorn -c gunicorn.conf.py wsgi:app`` exactly as ``make run`` does
(random weights, listening on 127.0.0.1 only), after migrating the database and
creating an admin user with an API token through the real CLI.
"""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import requests
import sqlalchemy as sa
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PASSWORD = "a long enough password"
POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
# Where the master converts ResNet50 for OpenVINO when a caller names no cache.
DEFAULT_MODEL_CACHE = ROOT / "instance" / "models"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------
# Databases


def postgres_reachable(timeout_s: float = 2.0) -> bool:
    """True when the local PostgreSQL accepts connections."""
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=timeout_s):
            pass
    except OSError:
        return False
    engine = sa.create_engine(f"{POSTGRES_SERVER}/postgres")
    try:
        with engine.connect():
            return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


def fresh_postgres_database(name: str) -> str:
    """Drop and create database ``name`` on the local server; return its URL."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"unsafe database name {name!r}")
    engine = sa.create_engine(
        f"{POSTGRES_SERVER}/postgres", isolation_level="AUTOCOMMIT"
    )
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" (FORCE)'))
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return f"{POSTGRES_SERVER}/{name}"


def reset_database(url: str) -> None:
    """Drop every table of ``url`` (a PostgreSQL schema or a SQLite file)."""
    from tests.test_migrations import reset_schema

    engine = sa.create_engine(url)
    try:
        reset_schema(engine)
    finally:
        engine.dispose()


def database_for_test(tmp: Path, name: str) -> str:
    """The database a server test uses: a fresh PostgreSQL database ``name``
    when ``TEST_DATABASE_URL`` is set (CI's PostgreSQL pass), else SQLite."""
    if os.environ.get("TEST_DATABASE_URL", "").startswith("postgres"):
        return fresh_postgres_database(name)
    return f"sqlite:///{tmp / (name + '.sqlite3')}"


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
# Images


def photo_jpeg(size: tuple[int, int] = (1365, 1365), quality: int = 90) -> bytes:
    """A photo-like JPEG (gradients and noise), like the load test's default."""
    width, height = size
    image = Image.merge(
        "RGB",
        (
            Image.linear_gradient("L").resize(size),
            Image.radial_gradient("L").resize(size),
            Image.effect_noise((width, height), 40),
        ),
    )
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


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


def wait_ready(url: str, process: subprocess.Popen, timeout_s: float = 300) -> float:
    """Seconds until /readyz answers 200; raises if the master exits first."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if requests.get(url + "/readyz", timeout=2).status_code == 200:
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not become ready")


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
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
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


# --------------------------------------------------------------------------
# Raw HTTP: exact bytes on the wire (names with CR/LF, chunked bodies, lies)


@dataclass
class RawResponse:
    """What came back on a raw connection; ``status`` 0 when nothing did."""

    status: int
    headers: dict[str, str]
    body: bytes
    send_error: str | None = None

    def json(self) -> dict:
        import json

        return json.loads(self.body)

    @property
    def error_code(self) -> str | None:
        try:
            return self.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return None


def raw_request(
    port: int,
    head: bytes,
    body: bytes | list[bytes] = b"",
    *,
    timeout_s: float = 60,
) -> RawResponse:
    """Send ``head`` (request line and headers, ending in a blank line) and the
    body pieces; read the answer even if the server stopped reading early."""
    pieces = [body] if isinstance(body, bytes) else body
    send_error = None
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        try:
            sock.sendall(head)
            for piece in pieces:
                sock.sendall(piece)
            sock.shutdown(socket.SHUT_WR)
        except OSError as exc:  # the server answered and closed before the end
            send_error = type(exc).__name__
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except OSError as exc:
            send_error = (send_error or "") + f" recv:{type(exc).__name__}"
    header_block, _, payload = data.partition(b"\r\n\r\n")
    lines = header_block.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/"):
        return RawResponse(0, {}, data, send_error)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(int(lines[0].split()[1]), headers, payload, send_error)


def request_head(
    path: str,
    content_type: bytes | None,
    *,
    token: str | None = None,
    content_length: int | None = None,
    chunked: bool = False,
    extra: bytes = b"",
) -> bytes:
    """A POST request head; Content-Length only when given."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    out = head.encode()
    if token:
        out += f"Authorization: Bearer {token}\r\n".encode()
    if content_type is not None:
        out += b"Content-Type: " + content_type + b"\r\n"
    if content_length is not None:
        out += f"Content-Length: {content_length}\r\n".encode()
    if chunked:
        out += b"Transfer-Encoding: chunked\r\n"
    return out + extra + b"\r\n"


BOUNDARY = b"snapclass-hostile-boundary"


def multipart(files: list[tuple[bytes, bytes]], *, closed: bool = True) -> bytes:
    """A multipart body with each ``(disposition filename, data)`` in the field
    ``image``; the filename bytes are written as given (CR, LF and NUL too).
    A name starting with ``*`` is sent as RFC 5987 ``filename*=`` instead."""
    out = b""
    for filename, data in files:
        if filename.startswith(b"*"):
            param = b"filename*=" + filename[1:]
        else:
            param = b'filename="' + filename + b'"'
        out += (
            b"--" + BOUNDARY + b"\r\n"
            b'Content-Disposition: form-data; name="image"; ' + param + b"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n"
        )
    return out + (b"--" + BOUNDARY + b"--\r\n" if closed else b"")


MULTIPART_TYPE = b"multipart/form-data; boundary=" + BOUNDARY


def chunked(body: bytes, size: int = 65536) -> list[bytes]:
    """``body`` in HTTP/1.1 chunked transfer coding."""
    pieces = [
        f"{len(body[i : i + size]):x}\r\n".encode() + body[i : i + size] + b"\r\n"
        for i in range(0, len(body), size)
    ]
    return [*pieces, b"0\r\n\r\n"]
