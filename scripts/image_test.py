"""``make image-test``: build the container image and run it for real.

With whichever of docker (when its daemon answers) or podman is installed:

1. builds the image (random weights: no download), under podman with
   ``--format docker`` so that the HEALTHCHECK is kept;
2. runs it **alone**, as ``docker run -p 8000:8000 -e MODEL_WEIGHTS=random
   snapclass`` would (SQLite, migrated at start), published on a loopback
   port: waits for ``/readyz``, registers through the page (CSRF token from
   the form), creates an API token on the account page, posts a photo with it
   and reads the prediction back; checks that the processes do not run as
   root, that the start logged no error or warning, and each process's memory;
3. runs it again with ``--read-only`` and the documented tmpfs mounts
   (``/tmp`` and ``/app/instance``) and does the same round trip;
4. starts two containers at once on one ``/app/instance`` folder: one
   migrates, the other waits for the entrypoint's lock;
5. runs it the way ``docker-compose.yml`` does, against the local PostgreSQL
   (127.0.0.1:5432, user postgres; a database of its own, created and dropped
   here) and Redis (127.0.0.1:6379): the migration job first, then two
   replicas in production mode with one ``SECRET_KEY``; a session and a token
   made on one replica work on the other, and failed sign-ins are counted
   across both (Redis).

The compose-like containers use the host's network (PostgreSQL and Redis are
on its loopback), each on a free port. Everything started is stopped and
removed at the end, whatever happened; the image is kept. Prints each check as
it passes and exits 1 on the first failure.

Usage::

    .venv/bin/python -m scripts.image_test                  # build and test
    .venv/bin/python -m scripts.image_test --no-build       # test the image as is
    .venv/bin/python -m scripts.image_test --engine podman --image snapclass:dev
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import requests
from PIL import Image

from app import __version__
from devtools.database import POSTGRES_SERVER
from devtools.database import drop_postgres_database
from devtools.database import fresh_postgres_database

log = logging.getLogger("image-test")
ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/0"
DATABASE = "snapclass_image_test"
PASSWORD = "image-test correct horse battery"
CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
NEW_TOKEN = re.compile(r'class="token-value"><code>([^<]+)</code>')
# What a normal start must not log (Gunicorn's, Python's and OpenVINO's words),
# but for the one warning an offline build must give: random weights come with
# no label file, so results show class numbers (README, MODEL_WEIGHTS).
BAD_LOG = re.compile(r"error|warning|traceback|denied", re.IGNORECASE)
EXPECTED_LOG = re.compile(r"WARNING app\.inference\.labels: ImageNet labels not found")
# The documented mounts for --read-only (README, Deployment): /app/instance
# must belong to the image's user; podman says so with U, docker with uid/gid.
READ_ONLY_MOUNTS = {
    "docker": ["/tmp", "/app/instance:uid=10001,gid=10001"],
    "podman": ["/tmp", "/app/instance:U"],
}
# Failed sign-ins allowed per account, counted across the replicas.
ACCOUNT_LIMIT = 3
MAX_IMAGE_BYTES = 1000 * 1000 * 1000  # the lean image's budget: 1 GB


class CheckFailed(Exception):
    """A check did not hold; the message says which and what was seen."""


def check(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def passed(message: str) -> None:
    log.info("  ok  %s", message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def engine_command(choice: str | None) -> list[str]:
    """docker when its daemon answers, else podman (runc: see shared/container)."""
    candidates = [choice] if choice else ["docker", "podman"]
    for name in candidates:
        path = shutil.which(name)
        if path is None:
            continue
        probe = subprocess.run(
            [path, "info"], capture_output=True, text=True, timeout=60, check=False
        )
        if probe.returncode == 0:
            return [path]
    raise SystemExit(f"image-test: none of {', '.join(candidates)} works here")


@dataclass
class Engine:
    """The container engine, and every container this run started."""

    command: list[str]
    started: list[str] = field(default_factory=list)

    @property
    def is_podman(self) -> bool:
        return Path(self.command[0]).name == "podman"

    def __call__(
        self, *args: str, timeout: float = 120, check_rc: bool = True
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [*self.command, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check_rc and result.returncode != 0:
            raise CheckFailed(
                f"{' '.join(args[:2])} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout)[-2000:]}"
            )
        return result

    def build(self, image: str, weights: str) -> float:
        args = ["build", "--network=host", "-t", image]
        args += ["--build-arg", f"MODEL_WEIGHTS={weights}"]
        if self.is_podman:
            args += ["--format", "docker"]
        started = time.monotonic()
        process = subprocess.run([*self.command, *args, str(ROOT)], check=False)
        check(process.returncode == 0, f"the image build failed ({process.returncode})")
        return time.monotonic() - started

    def run(
        self,
        image: str,
        name: str,
        env: dict[str, str],
        *extra: str,
        command: tuple[str, ...] = (),
        publish: int | None = None,
    ) -> str:
        """Start a container in the background: its port 8000 published on
        ``publish`` of the loopback, or else on the host's network."""
        args = ["run", "-d", "--name", name]
        if publish:
            args += ["-p", f"127.0.0.1:{publish}:8000"]
        else:
            args += ["--network", "host"]
        for key, value in env.items():
            args += ["-e", f"{key}={value}"]
        self.started.append(name)
        self(*args, *extra, image, *command)
        return name

    def logs(self, name: str) -> str:
        result = self("logs", name, check_rc=False)
        return result.stdout + result.stderr

    def stop(self, name: str) -> int:
        """SIGTERM, then wait for the graceful exit; the container's exit code."""
        self("stop", "-t", "40", name, timeout=90, check_rc=False)
        state = self("inspect", "-f", "{{.State.ExitCode}}", name, check_rc=False)
        return int(state.stdout.strip() or -1)

    def remove_all(self) -> None:
        for name in reversed(self.started):
            self("rm", "-f", name, timeout=90, check_rc=False)
        self.started.clear()


# --------------------------------------------------------------------------
# One instance, seen from outside


def wait_ready(engine: Engine, name: str, url: str, timeout_s: float = 240) -> float:
    """Seconds from now until ``/readyz`` answers 200 (model and database)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        state = engine("inspect", "-f", "{{.State.Running}}", name, check_rc=False)
        if state.stdout.strip() != "true":
            raise CheckFailed(f"{name} stopped:\n{engine.logs(name)[-3000:]}")
        try:
            if requests.get(url + "/readyz", timeout=3).status_code == 200:
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise CheckFailed(f"{name}: /readyz not 200 in {timeout_s:.0f} s")


def csrf_token(session: requests.Session, url: str) -> str:
    page = session.get(url, timeout=10)
    check(page.status_code == 200, f"GET {url}: {page.status_code}")
    match = CSRF_FIELD.search(page.text)
    check(match, f"no CSRF token in the form at {url}")
    return match.group(1)


def register(session: requests.Session, url: str, username: str) -> None:
    """Create an account through the sign-up page, as a person would."""
    token = csrf_token(session, url + "/register")
    answer = session.post(
        url + "/register",
        data={
            "csrf_token": token,
            "username": username,
            "password": PASSWORD,
            "confirm": PASSWORD,
        },
        allow_redirects=False,
        timeout=30,
    )
    check(
        answer.status_code == 302,
        f"sign-up answered {answer.status_code}: {answer.text[:500]}",
    )
    home = session.get(url + "/", timeout=10)
    check(home.status_code == 200 and username in home.text, "not signed in")


def create_api_token(session: requests.Session, url: str) -> str:
    """An API token from the account page (shown once)."""
    csrf = csrf_token(session, url + "/account")
    answer = session.post(
        url + "/account/tokens",
        data={"csrf_token": csrf, "name": "image-test"},
        timeout=30,
    )
    match = NEW_TOKEN.search(answer.text)
    check(answer.status_code == 200 and match, f"token: {answer.status_code}")
    return match.group(1)


def photo() -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((320, 240), 60).convert("RGB").save(buffer, "JPEG")
    return buffer.getvalue()


def predict_and_read_back(post_url: str, read_url: str, token: str) -> int:
    """POST /predict with a bearer token, then GET the stored prediction."""
    headers = {"Authorization": f"Bearer {token}"}
    answer = requests.post(
        post_url + "/predict",
        headers=headers,
        files={"image": ("photo.jpg", photo(), "image/jpeg")},
        timeout=60,
    )
    check(answer.status_code == 200, f"/predict: {answer.status_code} {answer.text}")
    body = answer.json()
    (result,) = body["results"]
    check(len(result["predictions"]) == 5, "not five labels")
    stored = requests.get(
        f"{read_url}/api/predictions/{result['id']}", headers=headers, timeout=10
    )
    check(stored.status_code == 200, f"read back: {stored.status_code}")
    check(stored.json()["id"] == result["id"], "read back another prediction")
    return result["id"]


def clean_start(logs: str) -> None:
    bad = [
        line
        for line in logs.splitlines()
        if BAD_LOG.search(line) and not EXPECTED_LOG.search(line)
    ]
    check(not bad, "the start logged:\n" + "\n".join(bad[:20]))


def process_memory(engine: Engine, name: str) -> dict[str, float]:
    """RSS (MiB) of the Gunicorn master (the container's PID 1) and its workers,
    read from the host's /proc."""
    pid = engine("inspect", "-f", "{{.State.Pid}}", name).stdout.strip()
    children: list[str] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += (task / "children").read_text().split()

    def rss(process: str) -> float:
        for line in Path(f"/proc/{process}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    memory = {"master": rss(pid)}
    for i, child in enumerate(children):
        memory[f"worker {i + 1}"] = rss(child)
    return memory


def healthy(engine: Engine, name: str, timeout_s: float = 60) -> bool:
    """The image's HEALTHCHECK passes: podman runs it on demand (its timers need
    systemd); docker runs it every interval, so wait for its verdict."""
    if engine.is_podman:
        return engine("healthcheck", "run", name, check_rc=False).returncode == 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = engine("inspect", "-f", "{{.State.Health.Status}}", name).stdout
        if state.strip() == "healthy":
            return True
        time.sleep(1)
    return False


def user_of(engine: Engine, name: str) -> str:
    return engine("exec", name, "id", "-u").stdout.strip()


# --------------------------------------------------------------------------
# The three runs


def alone(engine: Engine, image: str, figures: dict, read_only: bool) -> None:
    """``docker run -p 8000:8000 -e MODEL_WEIGHTS=random snapclass``: SQLite,
    migrated at start."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    label = "read-only" if read_only else "alone"
    extra: list[str] = []
    if read_only:
        extra.append("--read-only")
        for mount in READ_ONLY_MOUNTS["podman" if engine.is_podman else "docker"]:
            extra += ["--tmpfs", mount]
    name = engine.run(
        image,
        f"snapclass-image-test-{label}-{uuid.uuid4().hex[:6]}",
        # Two workers whatever the host's cores (the default is one per core).
        {"MODEL_WEIGHTS": "random", "WEB_CONCURRENCY": "2"},
        *extra,
        publish=port,
    )
    ready_s = wait_ready(engine, name, url)
    figures[f"{label}: start to ready (s)"] = round(ready_s, 1)
    passed(f"{label}: /readyz 200 {ready_s:.1f} s after start (SQLite, migrated)")
    clean_start(engine.logs(name))
    passed(f"{label}: no error or warning in the start's log")
    check(healthy(engine, name), f"{label}: the HEALTHCHECK fails")
    passed(f"{label}: the image's HEALTHCHECK passes")
    uid = user_of(engine, name)
    check(uid not in ("", "0"), f"runs as uid {uid}")
    passed(f"{label}: runs as uid {uid}, not root")
    session = requests.Session()
    register(session, url, f"image{label.replace('-', '')}")
    passed(f"{label}: signed up through /register with the form's CSRF token")
    token = create_api_token(session, url)
    prediction = predict_and_read_back(url, url, token)
    passed(f"{label}: POST /predict with an API token, read back #{prediction}")
    if read_only:
        probe = engine("exec", name, "touch", "/app/written", check_rc=False)
        check(probe.returncode != 0, "/app is writable under --read-only")
        passed("read-only: /app cannot be written; /tmp, /app/instance are tmpfs")
    else:
        memory = process_memory(engine, name)
        figures["RSS MiB (alone, after one request)"] = {
            k: round(v) for k, v in memory.items()
        }
        passed("alone: RSS " + ", ".join(f"{k} {v:.0f} MiB" for k, v in memory.items()))
    code = engine.stop(name)
    check(code == 0, f"{label}: exit code {code} after SIGTERM")
    passed(f"{label}: stopped gracefully on SIGTERM (exit 0)")


def shared_instance(engine: Engine, image: str) -> None:
    """Two containers on one /app/instance, started at once: the entrypoint's
    lock lets one migrate the SQLite database while the other waits."""
    folder = Path(tempfile.mkdtemp(prefix="snapclass-image-test-"))
    try:
        os.chown(folder, 10001, 10001)  # the image's user (this runs as root)
    except PermissionError:
        folder.chmod(0o777)
    try:
        ports = [free_port(), free_port()]
        names = [
            engine.run(
                image,
                f"snapclass-image-test-shared{i + 1}-{uuid.uuid4().hex[:6]}",
                {"MODEL_WEIGHTS": "random", "WEB_CONCURRENCY": "1"},
                "-v",
                f"{folder}:/app/instance",
                publish=port,
            )
            for i, port in enumerate(ports)
        ]
        for name, port in zip(names, ports, strict=True):
            wait_ready(engine, name, f"http://127.0.0.1:{port}")
        upgrades = [engine.logs(name).count("Running upgrade") for name in names]
        check(
            0 in upgrades and max(upgrades) > 0,
            f"migrations run by each container: {upgrades}",
        )
        with sqlite3.connect(folder / "snapclass.sqlite3") as database:
            query = database.execute("SELECT count(*) FROM alembic_version")
            (count,) = query.fetchone()
        check(count == 1, f"{count} rows in alembic_version")
        passed(
            "shared /app/instance: two containers started at once, one migrated "
            f"({max(upgrades)} revisions), the other waited; both ready"
        )
        for name in names:
            check(engine.stop(name) == 0, f"{name} did not stop cleanly")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def postgres_database(name: str) -> Iterator[str]:
    """A database of this test's own on the local server, dropped afterwards."""
    import sqlalchemy as sa

    try:
        url = fresh_postgres_database(name)
    except sa.exc.OperationalError as exc:
        raise CheckFailed(
            f"no PostgreSQL at {POSTGRES_SERVER} ({exc.orig}); "
            "--skip-compose runs without it"
        ) from None
    try:
        yield url
    finally:
        drop_postgres_database(name)


def tables(url: str) -> set[str]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def failed_sign_ins(urls: list[str], username: str) -> list[int]:
    """Wrong passwords for ``username``, alternating between the replicas."""
    session = requests.Session()  # one CSRF token, signed by the shared key
    token = csrf_token(session, urls[0] + "/login")
    statuses = []
    for attempt in range(ACCOUNT_LIMIT + 1):
        answer = session.post(
            urls[attempt % len(urls)] + "/login",
            data={"csrf_token": token, "username": username, "password": "wrong"},
            allow_redirects=False,
            timeout=30,
        )
        statuses.append(answer.status_code)
    return statuses


def compose_settings(overrides: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The app's environment and container options from docker-compose.yml,
    with what differs on this host (services on the loopback) overridden."""
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    app = compose["services"]["app"]
    env = {}
    for key, value in app["environment"].items():
        value = overrides.get(key, str(value))
        # ${NAME:-default} as compose reads it with NAME unset.
        value = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)
        check("${" not in value, f"docker-compose.yml: {key} needs a value here")
        env[key] = value
    options = ["--read-only"] if app.get("read_only") else []
    for mount in app.get("tmpfs", []):
        options += ["--tmpfs", mount]
    return env, options


def compose_like(engine: Engine, image: str, figures: dict) -> None:
    """docker-compose.yml's way: migration job, then two production replicas."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise CheckFailed(
            f"no Redis at {REDIS_URL} ({exc}); --skip-compose runs without it"
        ) from None
    prefix = f"image-test-{uuid.uuid4().hex[:8]}"
    with postgres_database(DATABASE) as database:
        env, options = compose_settings(
            {
                "SECRET_KEY": secrets.token_hex(32),
                "DATABASE_URL": database,
                "RATELIMIT_STORAGE_URI": REDIS_URL,
                "MODEL_WEIGHTS": "random",
                # nginx's network in compose; the loopback here.
                "TRUSTED_PROXIES": "127.0.0.1/32",
                "METRICS_ALLOW": "127.0.0.1/32",
            }
        )
        check(env["SNAPCLASS_ENV"] == "production", "compose is not production")
        env |= {
            "RATELIMIT_KEY_PREFIX": prefix,
            "LOGIN_LIMIT_ACCOUNT": f"{ACCOUNT_LIMIT} per hour",
            "HOST": "127.0.0.1",
        }
        job = engine.run(
            image,
            f"snapclass-image-test-migrate-{uuid.uuid4().hex[:6]}",
            env,
            *options,
            command=("flask", "db", "upgrade"),  # compose's `migrate` service
        )
        code = engine("wait", job, timeout=180).stdout.strip().splitlines()[-1]
        check(code == "0", f"migration job exit {code}:\n{engine.logs(job)}")
        check({"users", "alembic_version"} <= tables(database), "no schema")
        passed("compose: the migration job (flask db upgrade) made the schema")
        urls, names = [], []
        for i in range(2):
            port = free_port()
            urls.append(f"http://127.0.0.1:{port}")
            names.append(
                engine.run(
                    image,
                    f"snapclass-image-test-app{i + 1}-{uuid.uuid4().hex[:6]}",
                    {**env, "PORT": str(port)},
                    *options,
                )
            )
        for i, (name, url) in enumerate(zip(names, urls, strict=True)):
            ready_s = wait_ready(engine, name, url)
            figures[f"compose: replica {i + 1} start to ready (s)"] = round(ready_s, 1)
        passed(
            "compose: two production replicas ready on PostgreSQL and Redis, with "
            f"docker-compose.yml's settings and options ({' '.join(options)})"
        )
        for name in names:
            logs = engine.logs(name)
            clean_start(logs)
            check("alembic" not in logs, f"{name} migrated PostgreSQL itself")
        passed("compose: replicas logged no error or warning and did not migrate")
        session = requests.Session()
        register(session, urls[0], "imagecompose")
        account = session.get(urls[1] + "/account", allow_redirects=False, timeout=10)
        check(account.status_code == 200, f"session on replica 2: {account}")
        passed("compose: signed up on replica 1; the session holds on replica 2")
        token = create_api_token(session, urls[1])
        prediction = predict_and_read_back(urls[0], urls[1], token)
        passed(f"compose: token from replica 2, #{prediction} posted on 1, read on 2")
        statuses = failed_sign_ins(urls, "imagecompose")
        check(
            statuses[:-1] == [401] * ACCOUNT_LIMIT and statuses[-1] == 429,
            f"failed sign-ins across replicas answered {statuses}",
        )
        passed(
            f"compose: {ACCOUNT_LIMIT} failed sign-ins over both replicas, then 429 "
            "(limits shared in Redis)"
        )
        for name in names:
            code = engine.stop(name)
            check(code == 0, f"{name}: exit code {code} after SIGTERM")
        passed("compose: replicas stopped gracefully (exit 0)")
        for key in client.scan_iter(f"*{prefix}*"):
            client.delete(key)


def image_size(engine: Engine, image: str) -> int:
    return int(engine("image", "inspect", "-f", "{{.Size}}", image).stdout.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=("docker", "podman"))
    parser.add_argument("--image", default=f"snapclass:{__version__}")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--skip-compose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    engine = Engine(engine_command(args.engine))
    figures: dict = {"engine": Path(engine.command[0]).name, "image": args.image}
    started = time.monotonic()
    try:
        if not args.no_build:
            log.info("image-test: building %s with %s", args.image, figures["engine"])
            figures["build (s)"] = round(engine.build(args.image, "random"))
        size = image_size(engine, args.image)
        figures["image size (MB)"] = round(size / 1e6)
        check(size <= MAX_IMAGE_BYTES, f"the image is {size / 1e6:.0f} MB")
        passed(f"image {args.image}: {size / 1e6:.0f} MB (at most 1000)")
        healthcheck = engine(
            "image", "inspect", "-f", "{{json .Config.Healthcheck}}", args.image
        ).stdout
        check("/healthz" in healthcheck, "the image has no HEALTHCHECK")
        passed("the image keeps its HEALTHCHECK (/healthz)")
        alone(engine, args.image, figures, read_only=False)
        alone(engine, args.image, figures, read_only=True)
        shared_instance(engine, args.image)
        if not args.skip_compose:
            compose_like(engine, args.image, figures)
    except (CheckFailed, subprocess.TimeoutExpired) as exc:
        log.error("  FAIL %s", exc)
        return 1
    finally:
        engine.remove_all()
        figures["total (s)"] = round(time.monotonic() - started)
        log.info("%s", json.dumps(figures, indent=2))
    log.info("image-test: every check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
