"""Decode bounds (issue 23) on a real Gunicorn: one worker, random weights.

A 200 KB progressive JPEG of 20,000 empty scans took 53 s of a core and
answered 200; four concurrent 17 KB palette PNGs took a worker to 2.3 GB.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from devtools.decode_bombs import palette_png
from devtools.decode_bombs import progressive_jpeg_bomb
from devtools.decode_bombs import rgba_png
from devtools.photos import photo_jpeg
from devtools.server import proc_status
from devtools.server import reset_peak_rss

pytestmark = pytest.mark.server

MEMORY_BUDGET_MB = 256
# Before the fix this was +394..409 MiB: reading a PNG's EXIF orientation
# made Pillow load every pixel, before the reservation and at full size.
PEAK_GROWTH_LIMIT_MIB = MEMORY_BUDGET_MB


@pytest.fixture(scope="module")
def server(new_server):
    server = new_server(
        "decode_bombs",
        WEB_CONCURRENCY="1",
        DECODE_MEMORY_BUDGET_MB=str(MEMORY_BUDGET_MB),
    )
    yield server
    server.stop()


def post(session: requests.Session, server, name: str, data: bytes):
    return session.post(
        server.url + "/predict",
        headers=server.headers,
        files={"image": (name, data, "application/octet-stream")},
        timeout=120,
    )


def test_jpeg_of_twenty_thousand_empty_scans_is_refused_within_a_second(server):
    bomb = progressive_jpeg_bomb(6000, 20_000)
    with requests.Session() as session:
        assert post(session, server, "ok.jpg", photo_jpeg((320, 240))).ok
        started = time.monotonic()
        response = post(session, server, "scans.jpg", bomb)
        elapsed = time.monotonic() - started
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "image_too_complex"
    assert elapsed < 1.5, elapsed


def four_at_once(server, files: list[bytes], suffix: str) -> list[int]:
    def send(index: int) -> int:
        with requests.Session() as session:
            name = f"{index}-{time.monotonic_ns()}.{suffix}"
            return post(session, server, name, files[index]).status_code

    with ThreadPoolExecutor(len(files)) as pool:
        return list(pool.map(send, range(len(files))))


def test_concurrent_hostile_pngs_stay_within_the_memory_budget(server):
    """The worker's peak under four hostile PNGs at once stays within a
    bound of its peak under four ordinary photos at once."""
    (worker,) = server.workers()

    def photos(seed: int) -> list[bytes]:
        return [photo_jpeg((640 + seed + i, 480)) for i in range(4)]

    # The first round allocates what four requests at once need (a batch of
    # 4 in the network, threads' buffers); the second is the baseline peak.
    assert four_at_once(server, photos(0), "jpg") == [200] * 4
    if not reset_peak_rss(worker):
        pytest.skip("cannot reset the worker's peak RSS (clear_refs)")
    assert four_at_once(server, photos(10), "jpg") == [200] * 4
    ordinary_kib = proc_status(worker)["VmHWM"]
    reset_peak_rss(worker)
    hostile = [palette_png(6324), rgba_png(6324), palette_png(6323), rgba_png(6323)]
    assert four_at_once(server, hostile, "png") == [200] * 4
    growth_mib = (proc_status(worker)["VmHWM"] - ordinary_kib) / 1024
    print(
        f"\nworker peak: {ordinary_kib / 1024:.0f} MiB under 4 photos at once, "
        f"+{growth_mib:.0f} MiB under 4 hostile PNGs at once"
    )
    assert growth_mib < PEAK_GROWTH_LIMIT_MIB, growth_mib
