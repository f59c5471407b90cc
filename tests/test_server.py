"""End to end: the real Gunicorn server, the real model (random weights), HTTP."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

from devtools.database import database_for_test
from devtools.photos import photo_jpeg
from devtools.server import free_port
from devtools.server import gunicorn_until_exit
from devtools.server import launch_gunicorn
from devtools.server import ready_workers
from devtools.server import server_env
from devtools.server import start_server
from tests.helpers import PASSWORD

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """Gunicorn as ``make run`` starts it, with an empty model cache, so the
    master converts the model before it forks the workers."""
    tmp = tmp_path_factory.mktemp("server")
    server = start_server(
        tmp, database_for_test(tmp, "snapclass_e2e"), model_cache_dir=tmp / "models"
    )
    yield server
    server.stop()


def test_predict_over_http_with_token(live_server):
    response = requests.post(
        live_server.url + "/predict",
        headers={"Authorization": f"Bearer {live_server.token}"},
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
        live_server.url + "/api/predictions",
        headers={"Authorization": f"Bearer {live_server.token}"},
        timeout=10,
    ).json()
    assert result["id"] in [item["id"] for item in listing["items"]]


def test_browser_session_flow_over_http(live_server):
    url = live_server.url
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
    log = live_server.log()
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


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("MODEL_WEIGHTS", "missing.h5"),
        ("OPENVINO_PRECISION", "fp32"),
        ("BATCH_MAX_SIZE", "0"),
        ("BATCH_MAX_DELAY_MS", "-1"),
        ("SQLITE_SYNCHRONOUS", "sometimes"),
        # The master converts the model first (empty cache): too slow here.
        ("MODEL_CONVERT_TIMEOUT_S", "1"),
        ("MODEL_CONVERT_TIMEOUT_S", "soon"),
    ],
)
def test_server_refuses_to_start_with_a_bad_model_setting(tmp_path, setting, value):
    env = server_env(
        f"sqlite:///{tmp_path / 'never.sqlite3'}",
        tmp_path / "models",
        free_port(),
        **{setting: str(tmp_path / value) if setting == "MODEL_WEIGHTS" else value},
    )
    result = gunicorn_until_exit(env, timeout_s=60)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Snapclass cannot start." in output
    assert setting in output and "Traceback" not in output
    # Refused in the master: no worker was started, nothing was converted.
    assert "Booting worker" not in output
    models = tmp_path / "models"
    assert not models.exists() or not any(models.iterdir())


def test_unmigrated_database_is_named_at_start_and_by_readyz(tmp_path, model_cache_dir):
    """`gunicorn` on a database nobody migrated: the workers log what to run,
    /readyz says it, and requests get a 500 that names it, not a retryable 503."""
    env = server_env(
        f"sqlite:///{tmp_path / 'empty.sqlite3'}", model_cache_dir, free_port()
    )
    log_path = tmp_path / "gunicorn.log"
    process = launch_gunicorn(env, log_path)
    url = f"http://127.0.0.1:{env['PORT']}"
    try:
        deadline = time.monotonic() + 240
        while len(ready_workers(log_path.read_text())) < 2:
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        output = log_path.read_text()
        assert "the database has no schema: run `flask db upgrade`" in output
        assert requests.get(url + "/healthz", timeout=10).status_code == 200
        ready = requests.get(url + "/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["checks"]["schema"] is False
        assert "flask db upgrade" in ready.json()["reasons"]["schema"]
        response = requests.get(
            url + "/api/predictions",
            headers={"Authorization": "Bearer anything"},
            timeout=10,
        )
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "database_schema_missing"
    finally:
        process.terminate()
        process.wait(timeout=60)
