"""The image as docker-compose.yml runs it: a migration job, two replicas."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import requests

from devtools.database import POSTGRES_SERVER
from devtools.database import drop_postgres_database
from devtools.database import fresh_postgres_database
from devtools.server import free_port
from scripts.image_test.engine import ROOT
from scripts.image_test.engine import CheckFailed
from scripts.image_test.engine import Engine
from scripts.image_test.engine import check
from scripts.image_test.engine import passed
from scripts.image_test.instance import clean_start
from scripts.image_test.instance import create_api_token
from scripts.image_test.instance import csrf_token
from scripts.image_test.instance import predict_and_read_back
from scripts.image_test.instance import register
from scripts.image_test.instance import wait_ready

REDIS_URL = "redis://127.0.0.1:6379/0"
DATABASE = "snapclass_image_test"
# Failed sign-ins allowed per account, counted across the replicas.
ACCOUNT_LIMIT = 3


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
