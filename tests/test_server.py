"""End to end: the real Gunicorn server, the real model (random weights), HTTP."""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from PIL import Image

from tests.conftest import PASSWORD
from tests.conftest import gradient_image
from tests.test_migrations import reset_schema

pytestmark = pytest.mark.server
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(tmp: Path, **overrides: str) -> dict[str, str]:
    database = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp / 'e2e.sqlite3'}"
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "SECRET_KEY": "e2e-secret",
        "MODEL_WEIGHTS": "random",
        "WEB_CONCURRENCY": "2",
        "GUNICORN_ACCESS_LOG": "",
        "FLASK_APP": "wsgi",
        "MODEL_CACHE_DIR": str(tmp / "models"),
        "PYTHONUNBUFFERED": "1",
    }
    env.update(overrides)
    return env


def flask_cli(env: dict, *args: str) -> str:
    result = subprocess.run(
        [str(BIN / "flask"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.strip()


def wait_ready(url: str, process: subprocess.Popen, timeout_s: float = 120) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}")
        try:
            if requests.get(url + "/readyz", timeout=2).status_code == 200:
                return time.monotonic() - started
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.25)
    raise AssertionError("server did not become ready")


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    env = server_env(tmp, PORT=str(free_port()), HOST="127.0.0.1")
    if env["DATABASE_URL"].startswith("postgresql"):
        engine = sa.create_engine(env["DATABASE_URL"])
        reset_schema(engine)
        engine.dispose()
    flask_cli(env, "db", "upgrade")
    flask_cli(env, "create-user", "erin", "--password", PASSWORD)
    token = flask_cli(env, "create-token", "erin", "e2e")
    log_path = tmp / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{env['PORT']}"
    try:
        ready_after = wait_ready(url, process)
        yield {"url": url, "token": token, "log": log_path, "ready_s": ready_after}
    finally:
        process.terminate()
        process.wait(timeout=30)


def photo_jpeg(size=(1365, 1365)) -> bytes:
    buffer = io.BytesIO()
    gradient_image(size).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_predict_over_http_with_token(live_server):
    response = requests.post(
        live_server["url"] + "/predict",
        headers={"Authorization": f"Bearer {live_server['token']}"},
        files={"image": ("photo.jpg", photo_jpeg(), "image/jpeg")},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["weights"] == "random" and body["model"]["random_weights"]
    (result,) = body["results"]
    assert (result["width"], result["height"]) == (1365, 1365)
    assert len(result["predictions"]) == 5
    assert "inference;dur=" in response.headers["Server-Timing"]
    listing = requests.get(
        live_server["url"] + "/api/predictions",
        headers={"Authorization": f"Bearer {live_server['token']}"},
        timeout=10,
    ).json()
    assert result["id"] in [item["id"] for item in listing["items"]]


def test_browser_session_flow_over_http(live_server):
    url = live_server["url"]
    browser = requests.Session()
    page = browser.get(url + "/register", timeout=10).text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    response = browser.post(
        url + "/register",
        data={
            "username": "frank",
            "password": PASSWORD,
            "confirm": PASSWORD,
            "csrf_token": token,
        },
        timeout=10,
    )
    assert response.status_code == 200 and "upload-form" in response.text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', response.text).group(1)
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), (10, 120, 200)).save(buffer, "PNG")
    response = browser.post(
        url + "/upload",
        data={"csrf_token": token},
        files=[
            ("image", ("a.png", buffer.getvalue(), "image/png")),
            ("image", ("b.jpg", photo_jpeg((400, 300)), "image/jpeg")),
        ],
        timeout=30,
    )
    assert response.status_code == 200
    assert response.text.index("a.png") < response.text.index("b.jpg")
    # Requests in a session are spread over both workers: all stay signed in.
    for _ in range(6):
        assert browser.get(url + "/history", timeout=10).url.endswith("/history")


def test_workers_load_the_model_after_fork(live_server):
    log = live_server["log"].read_text()
    ready = re.findall(
        r"worker (\d+) ready: model loaded and warmed in ([\d.]+) s", log
    )
    assert len(ready) == 2
    assert len({pid for pid, _ in ready}) == 2
    # The master converted the model once; workers run OpenVINO only, so no
    # TensorFlow library is mapped into their memory.
    assert "OpenVINO model:" in log
    for pid, _ in ready:
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "openvino" in maps
        assert "site-packages/tensorflow/" not in maps


def test_server_refuses_to_start_without_weights(tmp_path):
    env = server_env(
        tmp_path, MODEL_WEIGHTS=str(tmp_path / "missing.h5"), PORT=str(free_port())
    )
    result = subprocess.run(
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Snapclass cannot start." in output
    assert "MODEL_WEIGHTS" in output and "Traceback" not in output
