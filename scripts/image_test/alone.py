"""The image on its own (SQLite): alone, read-only, two on one instance folder."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import uuid
from pathlib import Path

import requests

from devtools.server import free_port
from scripts.image_test.engine import Engine
from scripts.image_test.engine import check
from scripts.image_test.engine import passed
from scripts.image_test.instance import clean_start
from scripts.image_test.instance import create_api_token
from scripts.image_test.instance import healthy
from scripts.image_test.instance import predict_and_read_back
from scripts.image_test.instance import process_memory
from scripts.image_test.instance import register
from scripts.image_test.instance import user_of
from scripts.image_test.instance import wait_ready

# The documented mounts for --read-only (README, Deployment): /app/instance
# must belong to the image's user; podman says so with U, docker with uid/gid.
READ_ONLY_MOUNTS = {
    "docker": ["/tmp", "/app/instance:uid=10001,gid=10001"],
    "podman": ["/tmp", "/app/instance:U"],
}


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
