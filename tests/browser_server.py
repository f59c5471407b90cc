"""The real Gunicorn server for the browser tests (``tests/test_browser.py``).

Started the way ``make run`` starts it (``gunicorn -c gunicorn.conf.py
wsgi:app``, random weights, real ResNet50), on 127.0.0.1 and a free port, after
``flask db upgrade`` on a database of its own (or ``TEST_DATABASE_URL``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class BrowserServer:
    url: str
    process: subprocess.Popen
    log_path: Path
    env: dict[str, str]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def flask(self, *args: str) -> str:
        """Run a ``flask`` command against the server's database."""
        result = subprocess.run(
            [str(BIN / "flask"), *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return result.stdout.strip()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_browser_server(tmp: Path, **settings: str) -> BrowserServer:
    """Migrate a fresh database and start Gunicorn; return once /readyz is 200."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": os.environ.get("TEST_DATABASE_URL")
        or f"sqlite:///{tmp / 'browser.sqlite3'}",
        "SECRET_KEY": "browser-tests-secret",
        "MODEL_WEIGHTS": "random",
        "WEB_CONCURRENCY": "2",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "GUNICORN_ACCESS_LOG": "",
        "FLASK_APP": "wsgi",
        "MODEL_CACHE_DIR": str(tmp / "models"),
        "PYTHONUNBUFFERED": "1",
        **settings,
    }
    if env["DATABASE_URL"].startswith("postgresql"):
        from tests.test_migrations import reset_schema

        engine = sa.create_engine(env["DATABASE_URL"])
        reset_schema(engine)
        engine.dispose()
    subprocess.run(
        [str(BIN / "flask"), "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
        check=True,
    )
    log_path = tmp / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = BrowserServer(f"http://127.0.0.1:{port}", process, log_path, env)
    try:
        _wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: BrowserServer, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(
                f"server exited with {server.process.returncode}:\n{server.log()}"
            )
        try:
            if requests.get(server.url + "/readyz", timeout=2).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.25)
    raise AssertionError(f"server did not become ready:\n{server.log()}")
