"""Scale-out: nginx in front of three Gunicorn instances sharing PostgreSQL,
Redis and one SECRET_KEY, as docker-compose.yml and deploy/k8s run them.

Nothing may live in one instance only: a session, a CSRF token, a cached
result, a thumbnail and a rate-limit count from one instance hold on the
others; /metrics of each instance adds up to what went through nginx; and
when one instance dies (SIGKILL, master and workers), nginx moves the traffic
to the others without losing an accepted request.

Needs nginx (``apt-get install -y nginx``) and the local PostgreSQL; uses
``TEST_DATABASE_URL`` when it points at PostgreSQL, else creates the database
``snapclass_cluster`` (in CI it runs in the PostgreSQL pass only). Redis on
127.0.0.1:6379 holds the shared rate-limit counters. ``make cluster-test``
runs this file alone.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from PIL import Image

from devtools import locust
from devtools.database import fresh_postgres_database
from devtools.database import postgres_reachable
from devtools.server import PASSWORD
from devtools.server import children
from devtools.server import free_port
from devtools.server import start_server
from tests.helpers import parse_exposition
from tests.helpers import value

pytestmark = [pytest.mark.server, pytest.mark.slow]
log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
REDIS_URL = "redis://127.0.0.1:6379/0"
INSTANCES = 3
# Failed sign-ins per account, counted across every instance (Redis).
ACCOUNT_LIMIT = 4
CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
LOG_FORMAT = (
    "log_format cluster '$request_method $uri $status "
    "upstream=$upstream_addr upstream_status=$upstream_status rid=$request_id';"
)


def redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping())
    except Exception:
        return False


def cluster_database() -> str:
    url = os.environ.get("TEST_DATABASE_URL", "")
    if url.startswith("postgres"):
        return url
    if os.environ.get("CI"):
        # The cluster always runs on PostgreSQL: once per CI run is enough.
        pytest.skip("the cluster test runs in the PostgreSQL pass")
    if not postgres_reachable():
        pytest.skip("the cluster test needs PostgreSQL on 127.0.0.1:5432")
    return fresh_postgres_database("snapclass_cluster")


@dataclass
class Nginx:
    url: str
    process: subprocess.Popen
    prefix: Path

    def access_log(self) -> list[str]:
        return (self.prefix / "access.log").read_text().splitlines()

    def settled_log(self, start: int) -> list[str]:
        """Log lines from ``start`` on, once nginx has written them all: it logs
        a request just after the client has the answer."""
        lines: list[str] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.5)
            newer = self.access_log()[start:]
            if newer and len(newer) == len(lines):
                break
            lines = newer
        return lines


def start_nginx(ports: list[int]) -> Nginx:
    """nginx with deploy/nginx/snapclass.conf, as in docker-compose.yml."""
    # Not under pytest's tmp_path: nginx workers run as nobody when the tests
    # run as root, and must reach their temporary directories.
    prefix = Path(tempfile.mkdtemp(prefix="snapclass-nginx-"))
    prefix.chmod(0o755)
    port = free_port()
    servers = "\n".join(
        f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=30s;" for p in ports
    )
    temp_paths = "\n".join(
        f"    {name}_temp_path {prefix / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (prefix / "nginx.conf").write_text(
        f"""worker_processes 1;
pid {prefix / "nginx.pid"};
events {{
    worker_connections 512;
}}
http {{
{temp_paths}
    {LOG_FORMAT}
    access_log {prefix / "access.log"} cluster;
    upstream snapclass {{
{servers}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        include {ROOT / "deploy" / "nginx" / "snapclass.conf"};
    }}
}}
"""
    )
    process = subprocess.Popen(
        [
            NGINX,
            "-p",
            str(prefix),
            "-e",
            str(prefix / "error.log"),
            "-c",
            str(prefix / "nginx.conf"),
            "-g",
            "daemon off;",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((prefix / "error.log").read_text())
        try:
            if requests.get(url + "/healthz", timeout=2).status_code == 200:
                return Nginx(url, process, prefix)
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError("nginx did not start")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, model_cache_dir, classifier):
    if NGINX is None:
        pytest.skip(
            "nginx is not installed; the cluster test puts it in front of the "
            "instances (apt-get install -y --no-install-recommends nginx)"
        )
    if not redis_available():
        pytest.skip("the cluster test needs Redis on 127.0.0.1:6379")
    database = cluster_database()
    tmp = tmp_path_factory.mktemp("cluster")
    settings = {
        "SECRET_KEY": "one-secret-for-every-instance",
        "TRUSTED_PROXIES": "127.0.0.1",
        "RATELIMIT_STORAGE_URI": REDIS_URL,
        "RATELIMIT_KEY_PREFIX": f"cluster-test-{uuid.uuid4().hex[:8]}",
        "LOGIN_LIMIT_ACCOUNT": f"{ACCOUNT_LIMIT} per hour",
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "2",
        "INTRA_OP_THREADS": "1",
    }
    instances = []
    nginx = None
    try:
        for i in range(INSTANCES):
            instances.append(
                start_server(
                    tmp / f"node{i}",
                    database,
                    model_cache_dir=model_cache_dir,
                    username=f"node{i}",
                    reset=(i == 0),
                    PROMETHEUS_MULTIPROC_DIR=str(tmp / f"node{i}" / "metrics"),
                    **settings,
                )
            )
        nginx = start_nginx([int(s.env["PORT"]) for s in instances])
        yield {"instances": instances, "nginx": nginx, "tmp": tmp}
    finally:
        if nginx is not None:
            nginx.process.send_signal(signal.SIGQUIT)
            nginx.process.wait(timeout=30)
            shutil.rmtree(nginx.prefix, ignore_errors=True)
        for server in instances:
            server.stop(timeout_s=30)


def scrape(server) -> dict:
    response = requests.get(server.url + "/metrics", timeout=10)
    assert response.status_code == 200
    return parse_exposition(response.text)


def requests_by_upstream(lines: list[str]) -> Counter:
    """Answers each instance gave, from nginx's log (retries included)."""
    answered: Counter = Counter()
    for line in lines:
        match = re.search(r"upstream=(.*?) upstream_status=(.*?) rid=", line)
        if not match:
            continue
        addresses = [a.strip() for a in match.group(1).split(",")]
        statuses = [s.strip() for s in match.group(2).split(",")]
        for address, status in zip(addresses, statuses, strict=True):
            if status.isdigit() and status != "502":
                answered[address] += 1
    return answered


def address(server) -> str:
    return f"127.0.0.1:{server.env['PORT']}"


def unique_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((96, 96), 60).convert("RGB").save(buffer, "JPEG")
    return buffer.getvalue()


# --------------------------------------------------------------------------


def test_load_through_nginx_is_spread_and_counted_exactly(cluster, tmp_path):
    instances, nginx = cluster["instances"], cluster["nginx"]
    log_start = len(nginx.settled_log(0))  # after nginx logged earlier requests
    before = [scrape(s) for s in instances]
    profile = locust.Profile(6, 6, 10, "between:0.1:0.4", ["predict"])
    profile.stop_timeout_s = 30
    result = locust.run(
        nginx.url, tmp_path / "locust", profile, env={"SNAPCLASS_IMAGE_SIZE": "640x480"}
    )
    stats = {
        (row["Type"], name): row
        for name, row in result.stats().items()
        if name != "Aggregated"
    }
    sent = int(stats[("POST", "/predict")]["Request Count"])
    failed = sum(int(row["Failure Count"]) for row in stats.values())
    assert failed == 0 and result.exit_code == 0, result.output()[-3000:]
    assert sent >= 20
    after = [scrape(s) for s in instances]

    def delta(i, name, **labels):
        return value(after[i], name, **labels) - value(before[i], name, **labels)

    predict = {"route": "/predict", "method": "POST", "status": "200"}
    per_instance = [
        delta(i, "snapclass_http_requests_total", **predict) for i in range(3)
    ]
    # Every request Locust sent through nginx is counted once, by one instance.
    assert sum(per_instance) == sent
    assert all(n > 0 for n in per_instance), per_instance
    # Each instance's own total equals what nginx says that instance answered.
    answered = requests_by_upstream(nginx.settled_log(log_start))
    for i, server in enumerate(instances):
        total = delta(i, "snapclass_http_requests_total")
        assert total == answered[address(server)], (i, total, answered)
    # One photo, posted by every user to every instance: after the first
    # classification the others are cache hits, wherever they land.
    hits = sum(delta(i, "snapclass_result_cache_hits_total") for i in range(3))
    misses = sum(delta(i, "snapclass_result_cache_misses_total") for i in range(3))
    assert hits + misses == sent and hits > misses
    log.info(
        "locust: %d POST /predict through nginx, 0 failures; per instance %s; "
        "cache hits %d, misses %d",
        sent,
        [int(n) for n in per_instance],
        hits,
        misses,
    )


def test_a_session_from_one_instance_works_on_every_instance(cluster):
    instances, nginx = cluster["instances"], cluster["nginx"]
    browser = requests.Session()
    page = browser.get(nginx.url + "/register", timeout=10).text
    username = "walker-" + uuid.uuid4().hex[:8]
    response = browser.post(
        nginx.url + "/register",
        data={
            "username": username,
            "password": PASSWORD,
            "confirm": PASSWORD,
            "csrf_token": CSRF_FIELD.search(page).group(1),
        },
        timeout=10,
    )
    assert response.status_code == 200
    csrf = CSRF_FIELD.search(response.text).group(1)
    # The same cookie, straight to each instance (cookies ignore the port).
    for server in instances:
        page = browser.get(server.url + "/history", timeout=10)
        assert page.status_code == 200 and page.url.endswith("/history")
        assert username in page.text
    # A CSRF token minted by one instance is accepted by another.
    for server in instances:
        posted = browser.post(
            server.url + "/predict",
            headers={"X-CSRFToken": csrf},
            files={"image": ("s.jpg", unique_jpeg(), "image/jpeg")},
            timeout=30,
        )
        assert posted.status_code == 200, posted.text


def test_a_result_cached_by_one_instance_is_a_hit_on_the_others(cluster):
    first, *others = cluster["instances"]
    data = unique_jpeg()
    headers = first.headers  # node0's token works everywhere: one database
    response = requests.post(
        first.url + "/predict",
        headers=headers,
        files={"image": ("n.jpg", data, "image/jpeg")},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    (created,) = response.json()["results"]
    assert created["cached"] is False
    for server in others:
        again = requests.post(
            server.url + "/predict",
            headers=headers,
            files={"image": ("n.jpg", data, "image/jpeg")},
            timeout=30,
        ).json()["results"][0]
        assert again["cached"] is True
        assert again["predictions"] == created["predictions"]
        # The thumbnail stored by the first instance is served by this one.
        thumb = requests.get(
            f"{server.url}/api/predictions/{created['id']}/thumbnail.jpg",
            headers=headers,
            timeout=10,
        )
        assert thumb.status_code == 200
        assert thumb.headers["Content-Type"] == "image/jpeg"


def test_request_ids_come_from_nginx_and_reach_the_app_log(cluster):
    nginx = cluster["nginx"]
    response = requests.get(
        nginx.url + "/api/predictions",
        headers={**cluster["instances"][0].headers, "X-Request-ID": "from-client"},
        timeout=10,
    )
    assert response.status_code == 200
    request_id = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)  # nginx's $request_id
    assert any(f"rid={request_id}" in line for line in nginx.access_log())
    logged = []
    deadline = time.monotonic() + 10
    while not logged and time.monotonic() < deadline:
        logged = [
            json.loads(line)
            for server in cluster["instances"]
            for line in server.log().splitlines()
            if line.startswith("{") and request_id in line
        ]
        time.sleep(0.1)
    (record,) = logged
    assert record["route"] == "/api/predictions" and record["status"] == 200


def test_metrics_are_not_reachable_through_nginx(cluster):
    response = requests.get(cluster["nginx"].url + "/metrics", timeout=10)
    assert response.status_code == 404
    assert b"snapclass_" not in response.content


def test_rate_limits_hold_across_instances(cluster):
    """Failed sign-ins for one account count once, whichever instance sees them."""
    instances = cluster["instances"]
    victim = "limited-" + uuid.uuid4().hex[:8]
    browser = requests.Session()
    statuses = []
    for attempt in range(ACCOUNT_LIMIT + 1):
        server = instances[attempt % len(instances)]
        page = browser.get(server.url + "/login", timeout=10).text
        response = browser.post(
            server.url + "/login",
            data={
                "username": victim,
                "password": "wrong password " + str(attempt),
                "csrf_token": CSRF_FIELD.search(page).group(1),
            },
            timeout=30,
        )
        statuses.append(response.status_code)
    assert statuses == [401] * ACCOUNT_LIMIT + [429]


def test_killing_an_instance_loses_no_accepted_request(cluster):
    instances, nginx = cluster["instances"], cluster["nginx"]
    survivors, victim = instances[:-1], instances[-1]
    headers = instances[0].headers
    stored_before = stored(nginx, headers)
    # The window starts once nginx has logged that request too.
    log_start = len(nginx.settled_log(0))
    before = [scrape(s) for s in survivors]
    outcomes: list[tuple[str, int, int | None]] = []
    errors: list[str] = []
    stop = threading.Event()

    def client():
        session = requests.Session()
        while not stop.is_set():
            try:
                response = session.post(
                    nginx.url + "/predict",
                    headers=headers,
                    files={"image": ("k.jpg", unique_jpeg(), "image/jpeg")},
                    timeout=30,
                )
                created = None
                if response.status_code == 200:
                    created = response.json()["results"][0]["id"]
                outcomes.append(("POST", response.status_code, created))
                response = session.get(
                    nginx.url + "/api/predictions?per_page=1",
                    headers=headers,
                    timeout=30,
                )
                outcomes.append(("GET", response.status_code, None))
            except requests.RequestException as exc:
                errors.append(repr(exc))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    victims = [victim.pid, *children(victim.pid)]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    time.sleep(5)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    victim.process.wait(timeout=10)

    assert errors == []  # nginx always answered
    gets = Counter(status for method, status, _ in outcomes if method == "GET")
    posts = Counter(status for method, status, _ in outcomes if method == "POST")
    # Idempotent requests were retried on a live instance: all succeeded.
    assert set(gets) == {200}, gets
    # A POST either succeeded or got a clear 502/503 (it was inside the dead
    # instance; nginx does not send it twice).
    assert set(posts) <= {200, 502, 503}, posts
    assert posts[200] > 0
    # Every accepted POST is stored and readable through the survivors.
    accepted = [created for method, _, created in outcomes if created is not None]
    for prediction_id in accepted:
        response = requests.get(
            f"{nginx.url}/api/predictions/{prediction_id}", headers=headers, timeout=10
        )
        assert response.status_code == 200
    # Nothing was stored twice: each POST is one row at most, and the only
    # rows without a 200 are those whose answer died with the instance.
    created = stored(nginx, headers) - stored_before
    assert posts[200] <= created <= posts[200] + posts[502] + posts[503]
    # The survivors' counters still match what nginx says they answered.
    after = [scrape(s) for s in survivors]
    answered = requests_by_upstream(nginx.settled_log(log_start))
    for i, server in enumerate(survivors):
        total = value(after[i], "snapclass_http_requests_total") - value(
            before[i], "snapclass_http_requests_total"
        )
        assert total == answered[address(server)], (i, total, answered)
    log.info(
        "kill: %d GETs, all 200; POSTs %s; %d accepted, all readable; %d rows "
        "stored; killed pids %s",
        sum(gets.values()),
        dict(posts),
        len(accepted),
        created,
        victims,
    )


def stored(nginx: Nginx, headers: dict) -> int:
    """How many predictions the user has, read through nginx."""
    response = requests.get(
        nginx.url + "/api/predictions?per_page=1", headers=headers, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()["total"]
