"""Slow and malformed bodies against a real Gunicorn (issue 14, "Slow bodies
freeze the server"): a body has BODY_TIMEOUT_S to arrive (then 408), bodies
of signed-out clients take few threads, and 40 connections dribbling bodies
leave /healthz and an API client answered within a second."""

from __future__ import annotations

import os
import re
import runpy
import secrets
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from devtools.rawhttp import raw_request
from tests.helpers import make_image_bytes

ROOT = Path(__file__).resolve().parent.parent
BODY_TIMEOUT_S = 3
FORM = b"application/x-www-form-urlencoded"


# --------------------------------------------------------------------------
# Defaults that need no server


def gunicorn_bind(**env: str) -> str:
    saved = dict(os.environ)
    try:
        os.environ.pop("HOST", None)
        os.environ.update(env)
        return runpy.run_path(str(ROOT / "gunicorn.conf.py"))["bind"]
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_gunicorn_listens_on_loopback_unless_host_says_otherwise():
    assert gunicorn_bind().startswith("127.0.0.1:")
    assert gunicorn_bind(HOST="0.0.0.0") == "0.0.0.0:8000"
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^HOST \?= 127\.0\.0\.1$", makefile, re.M)


def test_shipped_nginx_buffers_bodies_before_gunicorn():
    conf = (ROOT / "deploy" / "nginx" / "snapclass.conf").read_text()
    assert re.search(r"^proxy_request_buffering on;", conf, re.M)
    assert re.search(r"^client_body_timeout \d+s;", conf, re.M)


def test_a_body_past_its_deadline_is_a_408(make_app):
    app = make_app(BODY_TIMEOUT_S=1)

    class Slow:
        def read(self, size=-1):
            time.sleep(1.2)
            return b"x"

    response = app.test_client().post(
        "/login",
        content_type=FORM.decode(),
        environ_overrides={"wsgi.input": Slow(), "CONTENT_LENGTH": "100"},
    )
    assert response.status_code == 408
    assert response.headers["Connection"] == "close"


# --------------------------------------------------------------------------
# The real server


@pytest.fixture(scope="module")
def server(new_server):
    live = new_server(
        "slow_bodies",
        BODY_TIMEOUT_S=str(BODY_TIMEOUT_S),
        GUNICORN_ACCESS_LOG="-",
    )
    try:
        yield live
    finally:
        live.stop()


def port_of(server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def head(path: str, length: int | None = None, *, chunked=False, token=None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    lines.append("Content-Type: " + FORM.decode())
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.server
@pytest.mark.parametrize("path", ["/login", "/register"])
def test_a_malformed_chunked_body_is_a_400(server, path):
    for body in (b"zz\r\nusername=a\r\n0\r\n\r\n", b"5\r\nusernameXX0\r\n\r\n"):
        response = raw_request(port_of(server), head(path, chunked=True), body)
        assert response.status == 400, (body, response.body[:200])
    assert "Traceback" not in server.log()


def dribble(
    port: int,
    request_head: bytes,
    stop: threading.Event,
    every_s: float,
    give_up_s: float = 5 * BODY_TIMEOUT_S,
):
    """Send ``request_head``, then a byte every ``every_s`` until the server
    answers or closes (or ``give_up_s`` passed); returns (status or 0, seconds)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request_head)
        sock.settimeout(every_s)
        while not stop.is_set() and time.monotonic() - started < give_up_s:
            try:
                data = sock.recv(4096)
            except TimeoutError:
                try:
                    sock.sendall(b"a")
                except OSError:
                    break
                continue
            except OSError:
                break
            match = re.match(rb"HTTP/1\.1 (\d{3})", data)
            return (int(match.group(1)) if match else 0), time.monotonic() - started
    return 0, time.monotonic() - started


@pytest.mark.server
@pytest.mark.parametrize("who", ["anonymous", "token"])
def test_a_dribbled_body_gets_408_at_its_deadline(server, who):
    token = server.token if who == "token" else None
    path = "/login" if who == "anonymous" else "/predict"
    status, seconds = dribble(
        port_of(server), head(path, 100_000, token=token), threading.Event(), 0.3
    )
    assert status == 408
    assert BODY_TIMEOUT_S - 0.5 < seconds < BODY_TIMEOUT_S + 2


@pytest.mark.server
def test_forty_dribbled_bodies_leave_health_and_the_api_answered(server):
    port, stop = port_of(server), threading.Event()
    refused = []
    targets = ["/login", "/register", "/upload"]  # bodies read before any view

    def attacker(n: int):
        while not stop.is_set():
            path = targets[n % len(targets)]
            status, _ = dribble(port, head(path, 100_000), stop, 0.2)
            if not stop.is_set():
                refused.append(status)

    threads = [threading.Thread(target=attacker, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    image = make_image_bytes("JPEG", size=(64, 64))
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {server.token}"
    # A new connection each time: whichever worker accepts it must answer.
    api.headers["Connection"] = "close"
    health, listing, predict = [], [], []
    try:
        time.sleep(1.0)  # every attacker connected and dribbling
        deadline = time.monotonic() + 3 * BODY_TIMEOUT_S
        while time.monotonic() < deadline:
            for path, times in (("/healthz", health), ("/api/predictions", listing)):
                started = time.monotonic()
                response = api.get(server.url + path, timeout=10)
                times.append((response.status_code, time.monotonic() - started))
            started = time.monotonic()
            response = api.post(
                server.url + "/predict",
                data=image,
                headers={"Content-Type": "image/jpeg"},
                timeout=10,
            )
            predict.append((response.status_code, time.monotonic() - started))
            time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    for name, times in (("healthz", health), ("api", listing), ("predict", predict)):
        assert {status for status, _ in times} == {200}, (name, times)
        assert max(seconds for _, seconds in times) < 1.0, (name, times)
    # The attackers were answered (408, or 503/401/302 at once), not ignored.
    assert refused and set(refused) <= {302, 401, 408, 503}, set(refused)


@pytest.mark.server
def test_share_secrets_stay_out_of_the_access_log(server):
    secret = secrets.token_urlsafe(24)
    assert requests.get(f"{server.url}/s/{secret}", timeout=10).status_code == 404
    time.sleep(0.5)
    log = server.log()
    assert "/s/<redacted>" in log
    assert secret not in log
