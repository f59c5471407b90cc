"""Overload and rate limits on the real Gunicorn server (2 workers, real model).

100 concurrent clients: every answer is a 200 or a fast 503, nothing hangs,
and the accepted requests keep the server near its capacity. 10 clients
posting back to back (the saturation profile) never see a 503. Rate limits
stored in Redis hold across workers.
"""

from __future__ import annotations

import io
import os
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.helpers import gradient_image

pytestmark = pytest.mark.server
REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping())
    except Exception:
        return False


def photo(seed: int) -> bytes:
    """Distinct small photos, so the result cache never answers."""
    image = gradient_image((480, 360))
    image.putpixel((seed % 480, (seed // 480) % 360), (seed % 256, 7, 99))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def post(url: str, token: str, data: bytes) -> tuple[int, float]:
    started = time.perf_counter()
    response = requests.post(
        url + "/predict",
        data=data,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"},
        timeout=60,
    )
    return response.status_code, time.perf_counter() - started


def closed_loop(url, token, clients: int, seconds: float, backoff: bool = False):
    """``clients`` threads posting back to back for ``seconds``; with
    ``backoff`` a client told 503 waits its Retry-After, as a polite one does."""
    results, lock, counter = [], threading.Lock(), iter(range(10**9))
    deadline = time.monotonic() + seconds

    def client():
        while time.monotonic() < deadline:
            with lock:
                seed = next(counter)
            outcome = post(url, token, photo(seed))
            with lock:
                results.append(outcome)
            if backoff and outcome[0] == 503:
                time.sleep(1.0)

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(client)
    return results, time.monotonic() - started


@pytest.fixture(scope="module")
def server(new_server):
    # All clients share one token; the per-token limit is lifted by start_server.
    # The result cache is off: the tests send the same numbered photos, and
    # cache hits of an earlier test made a 10-client baseline read 58-64 req/s
    # against 29-34 for photos classified anew (the ratio below then failed).
    server = new_server("overload", RESULT_CACHE="false")
    yield server.url, server.token
    server.stop()


def test_saturation_load_gets_no_503(server):
    url, token = server
    results, elapsed = closed_loop(url, token, clients=10, seconds=8)
    statuses = [status for status, _ in results]
    assert statuses and set(statuses) == {200}
    print(f"\n10 clients back to back: {len(results) / elapsed:.1f} req/s, no 503")


def test_hundred_clients_get_200_or_fast_503(server):
    url, token = server
    baseline, _ = closed_loop(url, token, clients=10, seconds=6)
    baseline_rps = sum(1 for s, _ in baseline if s == 200) / 6
    results, elapsed = closed_loop(url, token, clients=100, seconds=10, backoff=True)
    statuses = {status for status, _ in results}
    assert statuses <= {200, 503}, statuses
    rejected = [t for s, t in results if s == 503]
    accepted = [t for s, t in results if s == 200]
    assert rejected, "100 clients should exceed the in-flight bound"
    assert max(t for _, t in results) < 60  # nothing waits for the worker timeout
    accepted_rps = len(accepted) / elapsed
    print(
        f"\n100 clients: {len(accepted)} x 200, {len(rejected)} x 503 in "
        f"{elapsed:.1f} s; 503 latency median {statistics.median(rejected) * 1000:.0f}"
        f" ms, p95 {sorted(rejected)[int(len(rejected) * 0.95)] * 1000:.0f} ms; "
        f"accepted {accepted_rps:.1f} req/s vs {baseline_rps:.1f} req/s at 10 clients"
    )
    # Refused at once, not queued for a slot: queued, 100 clients at this rate
    # would wait seconds. The bound is loose because the 100 client threads
    # share the two cores (and this process's GIL) with the server: the median
    # 503 took 0.45 s on the 2-core AMX Xeon of 2026-11-30 (under 0.25 s on
    # the Zen 5 machines), while admitted requests took about 0.5 s.
    assert statistics.median(rejected) < 1.0
    # The 100 client threads and their refused requests run on the same two
    # cores as the server: 0.71-0.8 of the 10-client rate on the AMX Xeon,
    # 0.61-0.86 on a Zen 4 with PostgreSQL (2026-12-08, photos classified
    # anew). The 10-client rate is measured again afterwards and the lower
    # one counts, so that one noisy measure cannot fail the run.
    again, _ = closed_loop(url, token, clients=10, seconds=6)
    again_rps = sum(1 for s, _ in again if s == 200) / 6
    assert accepted_rps >= 0.5 * min(baseline_rps, again_rps), again_rps


@pytest.mark.skipif(
    not redis_available() and os.environ.get("CI") != "true",
    reason="Redis is not running on 127.0.0.1:6379 (CI always has it)",
)
def test_rate_limits_in_redis_hold_across_workers(new_server):
    server = new_server(
        "ratelimit",
        RATELIMIT_STORAGE_URI=REDIS_URL,
        PREDICT_RATE_LIMIT="5 per minute",
        # Counters of earlier runs may still be in Redis: use fresh keys.
        RATELIMIT_KEY_PREFIX=f"test-{uuid.uuid4().hex}",
    )
    url, token = server.url, server.token
    try:
        statuses = []
        for seed in range(20):
            # A new connection each time, so both workers get requests.
            response = requests.post(
                url + "/predict",
                data=photo(seed),
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "image/jpeg",
                    "Connection": "close",
                },
                timeout=30,
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert int(response.headers["Retry-After"]) > 0
        assert statuses.count(200) == 5, statuses
        assert statuses.count(429) == 15
        system = requests.get(
            url + "/api/system", headers={"Authorization": f"Bearer {token}"}
        ).json()
        assert system["rate_limits"]["shared"] is True
    finally:
        server.stop()
