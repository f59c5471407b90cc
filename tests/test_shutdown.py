"""Graceful shutdown: SIGTERM to the Gunicorn master lets in-flight requests
finish (their rows committed and their 200 delivered) before the workers exit.
"""

from __future__ import annotations

import io
import signal
import threading
import time

import pytest
import requests
import sqlalchemy as sa
from PIL import Image

pytestmark = pytest.mark.server

IMAGES = 8
# graceful_timeout in gunicorn.conf.py (GUNICORN_GRACEFUL_TIMEOUT).
GRACEFUL_TIMEOUT_S = 30


def large_png(index: int, size=(3000, 2000)) -> bytes:
    """A 6-megapixel PNG (no draft mode: every pixel is decoded), ~0.3 MB."""
    gradient = Image.linear_gradient("L").resize(size)
    image = Image.merge(
        "RGB", (gradient, gradient.rotate(180), Image.new("L", size, index * 30))
    )
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def test_sigterm_lets_an_in_flight_batch_finish(new_server):
    server = new_server(
        "shutdown",
        RESULT_CACHE="false",
    )
    files = [
        ("image", (f"large-{i}.png", large_png(i), "image/png")) for i in range(IMAGES)
    ]
    outcome: dict = {}

    def post(key: str) -> None:
        started = time.monotonic()
        try:
            response = requests.post(
                server.url + "/predict", headers=server.headers, files=files, timeout=60
            )
            outcome[key] = (response, time.monotonic())
        except requests.RequestException as exc:
            outcome[key] = (exc, time.monotonic())
        outcome[key + "_s"] = time.monotonic() - started

    try:
        post("calibration")  # how long the batch takes on this machine
        calibration, _ = outcome["calibration"]
        assert calibration.status_code == 200, calibration.text
        duration = outcome["calibration_s"]
        assert duration > 0.5, "the batch is too fast to be caught in flight"

        client = threading.Thread(target=post, args=("in_flight",))
        client.start()
        time.sleep(duration * 0.4)
        sigterm_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        client.join(timeout=GRACEFUL_TIMEOUT_S + 30)
        exit_code = server.process.wait(timeout=GRACEFUL_TIMEOUT_S + 30)
    finally:
        server.stop()

    response, finished_at = outcome["in_flight"]
    assert isinstance(response, requests.Response), f"no answer: {response!r}"
    assert finished_at > sigterm_at, "the request was not in flight at SIGTERM"
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["filename"] for r in results] == [f"large-{i}.png" for i in range(IMAGES)]
    assert exit_code == 0
    log = server.log()
    assert "Worker exiting" in log
    assert "WORKER TIMEOUT" not in log and "SIGKILL" not in log

    engine = server.engine()
    try:
        with engine.connect() as connection:
            query = sa.text(
                "SELECT p.id, length(t.data) FROM predictions p "
                "JOIN thumbnails t ON t.id = p.thumbnail_id WHERE p.id IN :ids"
            ).bindparams(sa.bindparam("ids", expanding=True))
            stored = connection.execute(query, {"ids": [r["id"] for r in results]})
            stored = stored.all()
    finally:
        engine.dispose()
    assert len(stored) == IMAGES
    assert all(length > 0 for _, length in stored)
