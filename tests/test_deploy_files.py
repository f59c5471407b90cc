"""The deployment files agree with each other and with the code: Dockerfile,
docker-compose.yml, nginx, Kubernetes manifests, Prometheus and Grafana.

Docker is not available where the tests run, so the files are parsed and
checked for what matters (probes, limits, ports, images); ``nginx -t`` and
``docker compose config`` run too when those programs are installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from app import __version__
from app.config import Config
from app.observability import metrics

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
IMAGE = f"snapclass:{__version__}"
BACKENDS = ("openvino", "tensorflow")  # the Dockerfile's BACKEND build argument
APP_PORT = 8000
GUNICORN_TIMEOUT = 60  # gunicorn.conf.py's default
WORKER_RSS_MIB = 360  # measured: one OpenVINO worker (docs/deployment.md)
MASTER_RSS_MIB = 80  # measured: the Gunicorn master, no model


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


def dockerfile_stages() -> list[list[str]]:
    """Instructions per stage, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def stage_named(name: str) -> list[str]:
    (stage,) = [s for s in dockerfile_stages() if s[0].endswith(f" AS {name}")]
    return stage


def test_dockerfile_is_multi_stage_slim_and_non_root():
    stages = dockerfile_stages()
    assert len(stages) >= 2
    names = set()
    for stage in stages:
        base, _, name = stage[0].split(maxsplit=1)[1].partition(" AS ")
        # FROM venv-${BACKEND}: a stage of this file for every backend.
        for backend in BACKENDS:
            resolved = base.replace("${BACKEND}", backend)
            assert "-slim" in resolved or resolved in names, f"{base} is not slim"
        names.add(name.strip())
    final = stages[-1]
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users, "the runtime stage must switch to a non-root user"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert not any("build-essential" in line or "gcc" in line for line in final)


def test_dockerfile_serves_openvino_without_tensorflow_by_default():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BACKEND=openvino$", text, re.M)
    assert stage_named("venv")[0] == "FROM venv-${BACKEND} AS venv"
    lean = " ".join(stage_named("venv-openvino"))
    assert "requirements-serve.txt" in lean and "requirements.txt " not in lean
    # The model is converted with TensorFlow at build time, in its own stage.
    assert stage_named("model")[0].startswith("FROM venv-tensorflow ")
    assert "COPY --from=venv /opt/venv /opt/venv" in dockerfile_stages()[-1]
    assert "INFERENCE_BACKEND=${BACKEND}" in " ".join(dockerfile_stages()[-1])


def requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[\[=<>~]", line, maxsplit=1)[0].lower())
    return names


def test_serving_requirements_have_no_tensorflow_and_are_in_the_full_set():
    serve = requirement_names(ROOT / "requirements-serve.txt")
    assert not {name for name in serve if name.startswith("tensorflow")}
    assert {"openvino", "gunicorn", "flask"} <= serve
    full = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^-r requirements-serve\.txt$", full, re.M)
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


def test_image_migrates_sqlite_at_start_and_leaves_postgresql_to_the_job():
    final = dockerfile_stages()[-1]
    (entrypoint,) = [line for line in final if line.startswith("ENTRYPOINT")]
    assert json.loads(entrypoint[len("ENTRYPOINT") :]) == ["snapclass-entrypoint"]
    assert (
        "COPY deploy/docker-entrypoint.sh /usr/local/bin/snapclass-entrypoint" in final
    )
    script = (DEPLOY / "docker-entrypoint.sh").read_text()
    assert (DEPLOY / "docker-entrypoint.sh").stat().st_mode & 0o111
    # Only on SQLite, one container at a time, and the command runs after it.
    assert re.search(r'case "\$\{DATABASE_URL:-sqlite:\}" in\s+sqlite:\*\)', script)
    assert "flock /app/instance/.migrate.lock flask db upgrade" in script
    assert script.rstrip().endswith('exec "$@"')
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "!deploy/docker-entrypoint.sh" in ignored


def test_image_runs_alone_and_compose_and_kubernetes_say_production(compose, manifests):
    """The image has no SNAPCLASS_ENV (it runs alone on SQLite); the stacks
    that share PostgreSQL set production, which requires SECRET_KEY and
    DATABASE_URL."""
    assert "SNAPCLASS_ENV" not in " ".join(dockerfile_stages()[-1])
    assert compose["services"]["app"]["environment"]["SNAPCLASS_ENV"] == "production"
    assert one(manifests, "ConfigMap")["data"]["SNAPCLASS_ENV"] == "production"


def test_image_start_writes_only_tmp_and_instance():
    """Gunicorn's control socket under /tmp (not $HOME, /app, which is not
    writable), and OpenVINO's telemetry declined at build time."""
    final = " ".join(dockerfile_stages()[-1])
    assert "XDG_RUNTIME_DIR=/tmp " in final
    assert "PROMETHEUS_MULTIPROC_DIR=/tmp/" in final
    assert "HOME=/app /opt/venv/bin/opt_in_out --opt_out" in final


def test_dockerfile_fetches_weights_behind_a_build_arg():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG FETCH_MODEL=", text, re.M)
    assert "flask fetch-model" in text
    assert re.search(r'if \[ "\$FETCH_MODEL" = "1" \]', text)


def test_dockerfile_runs_gunicorn_with_a_healthcheck_on_healthz():
    final = dockerfile_stages()[-1]
    health = [line for line in final if line.startswith("HEALTHCHECK")]
    assert health and "/healthz" in health[0]
    assert f"127.0.0.1:{APP_PORT}" in health[0]
    assert f"EXPOSE {APP_PORT}" in final
    (cmd,) = [line for line in final if line.startswith("CMD")]
    assert json.loads(cmd[3:]) == ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]


def test_dockerfile_copies_only_files_that_exist_and_are_not_ignored():
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for needed in ("app", "migrations", "templates", "static", "wsgi.py"):
        assert needed not in ignored
    assert "requirements-serve.txt" not in ignored
    for private in (".venv", "instance", ".git", "tests", "*.sqlite3"):
        assert private in ignored
    for stage in dockerfile_stages():
        for line in stage:
            if line.startswith("COPY ") and "--from=" not in line:
                sources = [p for p in line.split()[1:-1] if not p.startswith("--")]
                for source in sources:
                    assert (ROOT / source).exists(), source
                    assert source not in ignored, source


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
