"""The deployment files agree with each other and with the code: Dockerfile,
docker-compose.yml, nginx, Kubernetes manifests, Prometheus and Grafana.

Docker is not available where the tests run, so the files are parsed and
checked for what matters (probes, limits, ports, images); ``nginx -t`` and
``docker compose config`` run too when those programs are installed.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from app import __version__
from app import create_app
from app.config import Config
from app.config import TestingConfig
from app.inference import resolve_backend
from app.observability import metrics

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
IMAGE = f"snapclass:{__version__}"
BACKENDS = ("openvino", "tensorflow")  # the Dockerfile's BACKEND build argument
APP_PORT = 8000
GUNICORN_TIMEOUT = 60  # gunicorn.conf.py's default
WORKER_RSS_MIB = 360  # measured: one OpenVINO worker (docs/deployment.md)
MASTER_RSS_MIB = 80  # measured: the Gunicorn master, no model
# The PATH that python:*-slim images set (what `ENV PATH=...:$PATH` extends).
BASE_IMAGE_PATH = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"


def size_bytes(value: str) -> int:
    """nginx / Kubernetes sizes: ``11m``, ``1536Mi``, ``1Gi``, ``1024M``."""
    match = re.fullmatch(r"(\d+)\s*([kKmMgG]i?)?[bB]?", str(value).strip())
    assert match, f"not a size: {value!r}"
    number, unit = int(match.group(1)), (match.group(2) or "").lower()
    factors = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
    binary = {"ki": 1024, "mi": 1024**2, "gi": 1024**3}
    return number * (binary.get(unit) or factors[unit])


def cpus(value) -> float:
    text = str(value)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


# --------------------------------------------------------------------------
# Dockerfile and .dockerignore


@dataclass
class Stage:
    """One ``FROM`` of the Dockerfile: its name, its base as written, and its
    instructions as ``(KEYWORD, arguments)`` with continuation lines joined."""

    name: str
    base: str
    lines: list[tuple[str, str]] = field(default_factory=list)

    def args_of(self, keyword: str) -> list[str]:
        return [args for word, args in self.lines if word == keyword]

    def env(self, build_args: dict[str, str]) -> dict[str, str]:
        """Its ``ENV`` settings, build arguments substituted."""
        settings: dict[str, str] = {}
        for args in self.args_of("ENV"):
            for pair in args.split():
                name, _, value = pair.partition("=")
                settings[name] = substitute(value, build_args)
        return settings

    def copies(self) -> list[tuple[str | None, list[str], str]]:
        """Its ``COPY``s as ``(--from stage or None, sources, destination)``."""
        found = []
        for args in self.args_of("COPY"):
            words = args.split()
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            source_stage = next(
                (f.removeprefix("--from=") for f in flags if f.startswith("--from=")),
                None,
            )
            found.append((source_stage, paths[:-1], paths[-1]))
        return found


def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    """The global build arguments (name -> default) and the stages."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    build_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            base, _, name = rest.partition(" AS ")
            stages.append(Stage(name.strip(), base.strip()))
        elif stages:
            stages[-1].lines.append((keyword, rest))
        elif keyword == "ARG":
            name, _, default = rest.partition("=")
            build_args[name] = default
    return build_args, stages


def substitute(text: str, build_args: dict[str, str]) -> str:
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)",
        lambda m: build_args.get(m.group(1) or m.group(2), m.group(0)),
        text,
    )


def built_from(stages: list[Stage], name: str, build_args: dict) -> list[Stage]:
    """Stage ``name`` and the stages it is built on, the first base first."""
    by_name = {stage.name: stage for stage in stages}
    chain: list[Stage] = []
    while name in by_name:
        chain.insert(0, by_name[name])
        name = substitute(by_name[name].base, build_args)
    return chain


def runtime_venv_stages(backend: str) -> list[Stage]:
    """The stages that build the virtual environment the runtime copies."""
    build_args, stages = dockerfile()
    runtime = stages[-1]
    (venv,) = [
        stage for stage, _, dest in runtime.copies() if stage and dest == "/opt/venv"
    ]
    return built_from(stages, venv, {**build_args, "BACKEND": backend})


def pip_installed(chain: list[Stage]) -> list[str]:
    """The repository's requirement files that ``pip install -r`` installs in
    ``chain``: each ``-r`` names a file that a ``COPY`` of the chain put there
    (so that the file's own ``-r`` lines find theirs next to it)."""
    copied = {
        PurePosixPath(dest).name: source
        for stage in chain
        for _, sources, dest in stage.copies()
        for source in sources
        if source.startswith("requirements")
    }
    installed = []
    for stage in chain:
        for run in stage.args_of("RUN"):
            for wanted in re.findall(r"pip install -r (\S+)", run):
                name = PurePosixPath(wanted).name
                assert name in copied, f"{wanted} is installed but never copied"
                installed.append(copied[name])
    for source in installed:  # what a file includes is in the image too
        for included in re.findall(r"^-r (\S+)", (ROOT / source).read_text(), re.M):
            assert included in copied.values(), f"{source} needs {included}"
    return installed


def requirement_lines(path: Path) -> list[str]:
    """The requirements of ``path`` and of the files it includes with ``-r``."""
    lines = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            lines += requirement_lines(path.parent / line.split()[1])
        elif line:
            lines.append(line)
    return lines


def requirement_names(path: Path) -> set[str]:
    return {
        re.split(r"[\[=<>~]", line, maxsplit=1)[0].lower()
        for line in requirement_lines(path)
    }


def test_dockerfile_is_multi_stage_slim_and_non_root():
    build_args, stages = dockerfile()
    assert len(stages) >= 2
    names = set()
    for stage in stages:
        # FROM venv-${BACKEND}: a stage of this file for every backend.
        for backend in BACKENDS:
            base = substitute(stage.base, {**build_args, "BACKEND": backend})
            assert "-slim" in base or base in names, f"{stage.base} is not slim"
        names.add(stage.name)
    final = stages[-1]
    users = final.args_of("USER")
    assert users, "the runtime stage must switch to a non-root user"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert not any(
        "build-essential" in run or "gcc" in run for run in final.args_of("RUN")
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_image_installs_exact_pins_and_serves_with_its_backend(backend):
    chain = runtime_venv_stages(backend)
    installed = pip_installed(chain)
    serve = ["requirements-serve.txt"]
    expected = {"openvino": serve, "tensorflow": [*serve, "requirements.txt"]}
    assert installed == expected[backend]
    for source in installed:
        for line in requirement_lines(ROOT / source):
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.]+", line), line
    names = set().union(*(requirement_names(ROOT / source) for source in installed))
    assert any(name.startswith("tensorflow") for name in names) == (
        backend == "tensorflow"
    )
    build_args, stages = dockerfile()
    runtime_env = stages[-1].env({**build_args, "BACKEND": backend})
    assert resolve_backend(runtime_env["INFERENCE_BACKEND"]) == backend


def test_the_default_image_is_the_lean_one_and_tensorflow_converts_the_model():
    build_args, stages = dockerfile()
    assert build_args["BACKEND"] == "openvino"
    # The model is converted at build time, where TensorFlow is installed.
    model = built_from(stages, "model", build_args)
    names = set().union(
        *(requirement_names(ROOT / source) for source in pip_installed(model))
    )
    assert "tensorflow-cpu" in names
    copied_from_model = {stage for stage, _, _ in stages[-1].copies()} - {None}
    assert "model" in copied_from_model


def test_serving_requirements_have_no_tensorflow_and_are_in_the_full_set():
    serve = requirement_names(ROOT / "requirements-serve.txt")
    assert not {name for name in serve if name.startswith("tensorflow")}
    assert {"openvino", "gunicorn", "flask"} <= serve
    full = requirement_lines(ROOT / "requirements.txt")
    assert set(requirement_lines(ROOT / "requirements-serve.txt")) <= set(full)
    assert "tensorflow-cpu" in requirement_names(ROOT / "requirements.txt")


def test_a_worker_on_the_openvino_path_imports_no_tensorflow(tmp_path):
    """What an OpenVINO worker imports (the app, the runtime) needs no
    TensorFlow or Keras: the lean image has none."""
    code = (
        "import sys, wsgi, app.inference.openvino_runtime; "
        "print(sorted({m.split('.')[0] for m in sys.modules} "
        "& {'tensorflow', 'keras', 'tf_keras', 'jax', 'torch'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            "PATH": os.environ.get("PATH", ""),
            "MODEL_WEIGHTS": "random",
            "INFERENCE_BACKEND": "openvino",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "SECRET_KEY": "x" * 32,
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def fake_command(folder: Path, name: str, then_run_the_rest: bool = False) -> None:
    """A ``name`` on PATH that logs its arguments (and, like flock, can run
    the command that follows its first argument)."""
    script = folder / name
    body = f'echo "{name} $*" >> "$CALLS"\n'
    if then_run_the_rest:
        body += 'shift\nexec "$@"\n'
    elif name == "flask":
        body += 'exit "${FLASK_EXIT:-0}"\n'
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)


@pytest.mark.parametrize(
    ("env", "migrates"),
    [
        ({}, True),
        ({"DATABASE_URL": "sqlite:////app/instance/snapclass.sqlite3"}, True),
        ({"DATABASE_URL": "postgresql+psycopg://u@db:5432/snapclass"}, False),
        ({"SNAPCLASS_MIGRATE": "0"}, False),
    ],
    ids=["no-database-url", "sqlite", "postgresql", "migrate-off"],
)
def test_the_image_entrypoint_migrates_sqlite_only_then_runs_the_command(
    tmp_path, env, migrates
):
    build_args, stages = dockerfile()
    final = stages[-1]
    (entrypoint,) = final.args_of("ENTRYPOINT")
    (command,) = json.loads(entrypoint)
    # The entrypoint is the shipped script, copied onto the image's PATH.
    ((source, dest),) = [
        (sources[0], dest)
        for stage, sources, dest in final.copies()
        if stage is None and PurePosixPath(dest).name == command
    ]
    path_dirs = final.env({**build_args, "PATH": BASE_IMAGE_PATH})["PATH"].split(":")
    assert str(PurePosixPath(dest).parent) in path_dirs
    script = ROOT / source
    assert script.stat().st_mode & 0o111
    # Run it with flock and flask replaced by loggers.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_command(bin_dir, "flock", then_run_the_rest=True)
    fake_command(bin_dir, "flask")
    calls = tmp_path / "calls"
    base = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(calls)}
    result = subprocess.run(
        [str(script), "sh", "-c", 'echo "served $*" >> "$CALLS"', "-", "x"],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    migration = [
        "flock /app/instance/.migrate.lock flask db upgrade",
        "flask db upgrade",
    ]
    ran = calls.read_text().splitlines()
    assert ran == ([*migration, "served x"] if migrates else ["served x"])
    # A failed migration stops the container before the command runs.
    if migrates:
        calls.unlink()
        failed = subprocess.run(
            [str(script), "sh", "-c", 'echo served >> "$CALLS"'],
            env={**base, **env, "FLASK_EXIT": "3"},
            capture_output=True,
            timeout=30,
        )
        assert failed.returncode == 3
        assert calls.read_text().splitlines() == migration


def test_image_runs_alone_and_compose_and_kubernetes_say_production(compose, manifests):
    """The image has no SNAPCLASS_ENV (it runs alone on SQLite); the stacks
    that share PostgreSQL set production, which requires SECRET_KEY and
    DATABASE_URL."""
    build_args, stages = dockerfile()
    assert "SNAPCLASS_ENV" not in stages[-1].env(build_args)
    assert compose["services"]["app"]["environment"]["SNAPCLASS_ENV"] == "production"
    assert one(manifests, "ConfigMap")["data"]["SNAPCLASS_ENV"] == "production"


def test_image_start_writes_only_tmp_and_instance():
    """What the app and Gunicorn write at start is under /tmp (Gunicorn's
    control socket, the metrics files) or /app/instance, the one folder the
    image's user owns; OpenVINO's telemetry is declined in the user's home."""
    build_args, stages = dockerfile()
    final = stages[-1]
    env = final.env(build_args)
    for name in ("XDG_RUNTIME_DIR", "PROMETHEUS_MULTIPROC_DIR"):
        assert PurePosixPath(env[name]).is_relative_to("/tmp"), name
    (workdir,) = final.args_of("WORKDIR")
    owned = re.findall(r"chown \S+ (\S+)", " ".join(final.args_of("RUN")))
    assert owned == [f"{workdir}/instance"]
    (useradd,) = [run for run in final.args_of("RUN") if "useradd" in run]
    home = re.search(r"--home-dir (\S+)", useradd).group(1)
    assert any(
        run.startswith(f"HOME={home} ") and "opt_in_out --opt_out" in run
        for run in final.args_of("RUN")
    )


def test_every_build_argument_a_stage_uses_is_declared_in_it():
    """An ARG before the first FROM is only seen by FROM lines; a stage that
    uses one (FETCH_MODEL, MODEL_WEIGHTS, BACKEND...) must declare it again,
    or it is silently empty there."""
    build_args, stages = dockerfile()
    for stage in stages:
        for name in re.findall(r"\$\{?(\w+)", stage.base):
            assert name in build_args, f"FROM {stage.base}: {name}"
    inherited: dict[str, set[str]] = {}
    for stage in stages:
        known = {"PATH", "HOME"} | inherited.get(stage.base, set())
        for word, args in stage.lines:
            if word in ("RUN", "ENV", "COPY", "WORKDIR", "USER"):
                used = set(re.findall(r"\$\{?(\w+)", args))
                assert used <= known, (
                    f"{stage.name}: {word} {args[:60]}: {used - known}"
                )
            if word == "ARG":
                known.add(args.partition("=")[0])
            if word == "ENV":
                known |= {pair.partition("=")[0] for pair in args.split()}
        inherited[stage.name] = known
    # The weights download is behind the FETCH_MODEL build argument.
    (fetch,) = [
        run for stage in stages for run in stage.args_of("RUN") if "fetch-model" in run
    ]
    assert re.search(r'if \[ "\$FETCH_MODEL" = "1" \]', fetch)


def test_dockerfile_runs_gunicorn_with_its_config_and_a_healthcheck_on_healthz():
    build_args, stages = dockerfile()
    final = stages[-1]
    env = final.env(build_args)
    (cmd,) = final.args_of("CMD")
    assert json.loads(cmd) == ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
    # The files the command names are copied next to each other in WORKDIR.
    copied = {
        PurePosixPath(source).name
        for stage, sources, dest in final.copies()
        if stage is None and dest in ("./", ".")
        for source in sources
    }
    assert {"gunicorn.conf.py", "wsgi.py"} <= copied
    assert "gunicorn" in requirement_names(ROOT / "requirements-serve.txt")
    # With the image's HOST and PORT, gunicorn.conf.py binds the exposed port.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "ns = {'__file__': 'gunicorn.conf.py'}\n"
            "exec(open('gunicorn.conf.py').read(), ns)\n"
            "print(ns['bind'])",
        ],
        cwd=ROOT,
        env={**os.environ, "HOST": env["HOST"], "PORT": env["PORT"]},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == f"0.0.0.0:{APP_PORT}"
    assert final.args_of("EXPOSE") == [str(APP_PORT)]
    # The health check asks for a route the app answers without a sign-in.
    (health,) = final.args_of("HEALTHCHECK")
    (url,) = re.findall(r"http://[^'\"]+", health)
    parts = urlsplit(url)
    assert (parts.hostname, parts.port) == ("127.0.0.1", APP_PORT)
    app = create_app(TestingConfig)
    assert app.test_client().get(parts.path).get_json() == {"status": "ok"}


def dockerignore_patterns() -> list[str]:
    return [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def dockerignored(path: str) -> bool:
    """Whether Docker leaves ``path`` out of the build context: the last
    pattern that matches the path or a folder above it decides, ``!`` keeps."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in dockerignore_patterns():
        keep = pattern.startswith("!")
        pattern = pattern.removeprefix("!")
        options = {pattern, pattern.removeprefix("**/")}
        if any(fnmatch.fnmatchcase(c, p) for c in candidates for p in options):
            ignored = not keep
    return ignored


def test_dockerfile_copies_only_files_that_exist_and_are_in_the_context():
    """Every file a COPY needs is in the build context; nothing private is."""
    _, stages = dockerfile()
    for stage in stages:
        for source_stage, sources, _ in stage.copies():
            if source_stage:
                continue
            for source in sources:
                assert (ROOT / source).exists(), source
                files = (
                    [ROOT / source]
                    if (ROOT / source).is_file()
                    else [
                        p
                        for p in (ROOT / source).rglob("*")
                        if p.is_file() and "__pycache__" not in p.parts
                    ]
                )
                for file in files:
                    relative = file.relative_to(ROOT).as_posix()
                    assert not dockerignored(relative), relative
    for private in (
        ".venv/bin/python",
        ".git/config",
        "instance/snapclass.sqlite3",
        "instance/secret_key",
        "deploy/k8s/secret.yaml",
        "tests/conftest.py",
        "snapclass.sqlite3",
        "app/__pycache__/models.cpython-311.pyc",
    ):
        assert dockerignored(private), private


# --------------------------------------------------------------------------
# docker-compose.yml


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_the_whole_stack(compose):
    assert {"nginx", "app", "db", "redis", "migrate"} <= set(compose["services"])


def test_compose_app_can_scale(compose):
    app = compose["services"]["app"]
    # A fixed name or a published port would stop `--scale app=3`.
    assert "container_name" not in app and "ports" not in app
    assert str(APP_PORT) in [str(p) for p in app["expose"]]
    assert app["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    limit = size_bytes(app["deploy"]["resources"]["limits"]["memory"])
    workers = int(re.search(r"\d+", app["environment"]["WEB_CONCURRENCY"]).group())
    assert limit >= (workers * WORKER_RSS_MIB + MASTER_RSS_MIB) * 1024**2


def test_compose_replicas_share_secret_database_and_redis(compose):
    env = compose["services"]["app"]["environment"]
    assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")  # required, never baked
    assert env["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@db:5432/" in env["DATABASE_URL"]
    assert env["RATELIMIT_STORAGE_URI"].startswith("redis://redis:6379")
    assert compose["services"]["migrate"]["environment"] == env
    assert compose["services"]["migrate"]["command"] == ["flask", "db", "upgrade"]


def test_compose_runs_the_image_read_only_with_tmp_writable(compose):
    for name in ("app", "migrate"):
        service = compose["services"][name]
        assert service["read_only"] is True
        assert "/tmp" in service["tmpfs"]


def test_compose_trusts_only_its_own_network(compose):
    (subnet,) = [c["subnet"] for c in compose["networks"]["default"]["ipam"]["config"]]
    env = compose["services"]["app"]["environment"]
    assert env["TRUSTED_PROXIES"] == subnet
    assert env["METRICS_ALLOW"] == subnet


def test_compose_images_match_the_kubernetes_image(compose, manifests):
    images = {compose["services"][name]["image"] for name in ("app", "migrate")}
    assert images == {IMAGE}
    pods = [doc for doc in manifests if doc["kind"] in ("Deployment", "Job")]
    assert {container(doc)["image"] for doc in pods} == {IMAGE}


def test_compose_nginx_mounts_the_shipped_config(compose):
    nginx = compose["services"]["nginx"]
    assert nginx["ports"]
    sources = [volume.split(":")[0] for volume in nginx["volumes"]]
    for source in sources:
        assert (ROOT / source).is_file(), source
    assert "./deploy/nginx/snapclass.conf" in sources
    assert nginx["depends_on"]["app"]["condition"] == "service_healthy"


def test_compose_monitoring_files_exist(compose):
    for name in ("prometheus", "grafana"):
        for volume in compose["services"][name]["volumes"]:
            assert (ROOT / volume.split(":")[0]).is_file(), volume


def test_docker_compose_config_accepts_the_file():
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed")
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=30
    )
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    result = subprocess.run(
        [docker, "compose", "-f", "docker-compose.yml", "config", "--quiet"],
        cwd=ROOT,
        env={"SECRET_KEY": "x" * 64, "PATH": "/usr/bin:/bin:/usr/local/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------
# nginx


def nginx_directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip().rstrip(";")
        if line and not line.endswith(("{", "}")):
            name, _, value = line.partition(" ")
            found.setdefault(name, []).append(value.strip())
    return found


def test_nginx_limits_and_retries():
    conf = nginx_directives((DEPLOY / "nginx" / "snapclass.conf").read_text())
    (body,) = conf["client_max_body_size"]
    assert size_bytes(body) >= Config.MAX_CONTENT_LENGTH
    (read_timeout,) = conf["proxy_read_timeout"]
    assert int(read_timeout.rstrip("s")) > GUNICORN_TIMEOUT
    (retry,) = conf["proxy_next_upstream"]
    assert {"error", "timeout"} <= set(retry.split())
    assert "non_idempotent" not in retry  # a POST is never sent twice
    assert "X-Request-ID $request_id" in conf["proxy_set_header"]
    assert "http://snapclass" in conf["proxy_pass"]


def test_nginx_refuses_metrics_from_outside():
    text = (DEPLOY / "nginx" / "snapclass.conf").read_text()
    assert re.search(r"location = /metrics \{\s*return 404;", text)


def test_nginx_upstream_is_the_compose_service(compose):
    text = (DEPLOY / "nginx" / "nginx.conf").read_text()
    assert re.search(rf"server app:{APP_PORT}\b", text)
    assert "include /etc/nginx/snapclass.conf;" in text


def test_nginx_accepts_the_config(tmp_path):
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx is None:
        pytest.skip("nginx is not installed")
    text = (DEPLOY / "nginx" / "nginx.conf").read_text()
    text = text.replace("include /etc/nginx/mime.types;", "")
    text = text.replace(
        "/etc/nginx/snapclass.conf", str(DEPLOY / "nginx/snapclass.conf")
    )
    text = text.replace(f"server app:{APP_PORT}", f"server 127.0.0.1:{APP_PORT}")
    text = text.replace("access_log /dev/stdout", f"access_log {tmp_path}/access.log")
    config = tmp_path / "nginx.conf"
    config.write_text(f"pid {tmp_path}/nginx.pid;\n" + text)
    result = subprocess.run(
        [
            nginx,
            "-t",
            "-p",
            str(tmp_path),
            "-e",
            str(tmp_path / "error.log"),
            "-c",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------
# Kubernetes


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def one(manifests, kind: str) -> dict:
    (doc,) = [doc for doc in manifests if doc["kind"] == kind]
    return doc


def container(doc: dict) -> dict:
    (first,) = doc["spec"]["template"]["spec"]["containers"]
    return first


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    files = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_every_kind_is_there_in_one_namespace(manifests):
    kinds = {doc["kind"] for doc in manifests}
    assert {
        "Deployment",
        "Service",
        "Ingress",
        "HorizontalPodAutoscaler",
        "Job",
        "ConfigMap",
        "Secret",
    } <= kinds
    namespaced = [doc for doc in manifests if doc["kind"] != "Namespace"]
    assert {doc["metadata"]["namespace"] for doc in namespaced} == {"snapclass"}


def test_deployment_probes(manifests):
    app = container(one(manifests, "Deployment"))
    assert app["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert app["livenessProbe"]["httpGet"]["path"] == "/healthz"
    startup = app["startupProbe"]
    assert startup["httpGet"]["path"] == "/healthz"
    # Model load and warm-up take tens of seconds: allow at least two minutes.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    (port,) = app["ports"]
    assert port["containerPort"] == APP_PORT
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert app[probe]["httpGet"]["port"] in (port["name"], APP_PORT)


def test_deployment_resources_fit_the_measured_workers(manifests):
    deployment = one(manifests, "Deployment")
    settings = one(manifests, "ConfigMap")["data"]
    workers = int(settings["WEB_CONCURRENCY"])
    resources = container(deployment)["resources"]
    needed = (workers * WORKER_RSS_MIB + MASTER_RSS_MIB) * 1024**2
    assert size_bytes(resources["requests"]["memory"]) >= needed
    assert size_bytes(resources["limits"]["memory"]) > size_bytes(
        resources["requests"]["memory"]
    )
    # One inference thread per worker, one CPU each.
    threads = workers * int(settings["INTRA_OP_THREADS"])
    assert cpus(resources["requests"]["cpu"]) == threads
    assert cpus(resources["limits"]["cpu"]) >= threads


def test_deployment_runs_read_only_as_non_root(manifests):
    deployment = one(manifests, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    app = container(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert app["securityContext"]["readOnlyRootFilesystem"] is True
    assert app["securityContext"]["allowPrivilegeEscalation"] is False
    mounts = {m["mountPath"] for m in app["volumeMounts"]}
    assert {"/tmp", "/app/instance"} <= mounts
    metrics_dir = one(manifests, "ConfigMap")["data"]["PROMETHEUS_MULTIPROC_DIR"]
    assert metrics_dir.startswith("/tmp/")
    assert pod["terminationGracePeriodSeconds"] > 30  # GUNICORN_GRACEFUL_TIMEOUT


def test_deployment_reads_the_configmap_and_secret(manifests):
    names = {
        (kind, one(manifests, kind)["metadata"]["name"])
        for kind in ("ConfigMap", "Secret")
    }
    for kind in ("Deployment", "Job"):
        refs = container(one(manifests, kind))["envFrom"]
        used = {
            ("ConfigMap", r["configMapRef"]["name"])
            for r in refs
            if "configMapRef" in r
        }
        used |= {("Secret", r["secretRef"]["name"]) for r in refs if "secretRef" in r}
        assert used == names
    secret = one(manifests, "Secret")["stringData"]
    assert {"SECRET_KEY", "DATABASE_URL", "METRICS_TOKEN"} <= set(secret)
    assert one(manifests, "ConfigMap")["data"]["METRICS_ALLOW"] == ""


def test_service_and_ingress_reach_the_pods(manifests):
    deployment = one(manifests, "Deployment")
    service = one(manifests, "Service")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in ("http", APP_PORT)
    ingress = one(manifests, "Ingress")
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    backend = path["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"].get("name") == port["name"]


def test_ingress_limits_body_size_and_timeouts(manifests):
    notes = one(manifests, "Ingress")["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert size_bytes(notes[prefix + "proxy-body-size"]) >= Config.MAX_CONTENT_LENGTH
    assert int(notes[prefix + "proxy-read-timeout"]) > GUNICORN_TIMEOUT
    assert "non_idempotent" not in notes[prefix + "proxy-next-upstream"]


def test_hpa_scales_the_deployment(manifests):
    hpa = one(manifests, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert target["kind"] == "Deployment"
    assert target["name"] == one(manifests, "Deployment")["metadata"]["name"]
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]


def test_migration_job_runs_flask_db_upgrade(manifests):
    job = one(manifests, "Job")
    assert container(job)["command"] == ["flask", "db", "upgrade"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")


# --------------------------------------------------------------------------
# Prometheus and Grafana


def sample_names() -> set[str]:
    """Every sample name app/observability/metrics.py can expose."""
    suffixes = {
        "counter": ["_total"],
        "gauge": [""],
        "histogram": ["_bucket", "_sum", "_count"],
    }
    names = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names |= {family.name + s for s in suffixes[family.type]}
    return names


def metric_names_in(expression: str) -> set[str]:
    return set(re.findall(r"\bsnapclass_[a-z_]+\b", expression))


def test_prometheus_scrapes_the_app_port():
    config = yaml.safe_load((DEPLOY / "monitoring" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["app"] and sd["port"] == APP_PORT
    for rule_file in config["rule_files"]:
        assert (DEPLOY / "monitoring" / Path(rule_file).name).is_file()
    k8s = yaml.safe_load(
        (DEPLOY / "monitoring" / "prometheus-kubernetes.yml").read_text()
    )
    (job,) = k8s["scrape_configs"]
    assert job["authorization"]["type"] == "Bearer"


def test_dashboard_and_alerts_use_only_metrics_that_exist():
    known = sample_names()
    assert "snapclass_http_requests_total" in known
    dashboard = json.loads(
        (DEPLOY / "monitoring" / "grafana-dashboard.json").read_text()
    )
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used |= metric_names_in(target["expr"])
    rules = yaml.safe_load((DEPLOY / "monitoring" / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            used |= metric_names_in(rule["expr"])
    assert used - known == set()
    families = {name.removesuffix("_total") for name in used}
    for wanted in (
        "snapclass_http_requests",
        "snapclass_inference_duration_seconds_bucket",
        "snapclass_result_cache_hits",
        "snapclass_http_requests_in_flight",
        "snapclass_worker_restarts",
        "snapclass_model_info",
    ):
        assert wanted in families, wanted
