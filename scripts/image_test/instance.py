"""One running instance, seen from outside: ready, signed up, predicting, clean."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import requests
from PIL import Image

from devtools.server import seconds_until_ready
from scripts.image_test.engine import CheckFailed
from scripts.image_test.engine import Engine
from scripts.image_test.engine import check

PASSWORD = "image-test correct horse battery"
CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
NEW_TOKEN = re.compile(r'class="token-value"><code>([^<]+)</code>')
# What a normal start must not log (Gunicorn's, Python's and OpenVINO's words),
# but for the one warning an offline build must give: random weights come with
# no label file, so results show class numbers (README, MODEL_WEIGHTS).
BAD_LOG = re.compile(r"error|warning|traceback|denied", re.IGNORECASE)
EXPECTED_LOG = re.compile(r"WARNING app\.inference\.labels: ImageNet labels not found")


def wait_ready(engine: Engine, name: str, url: str, timeout_s: float = 240) -> float:
    """Seconds from now until ``/readyz`` answers 200 (model and database)."""

    def alive() -> None:
        state = engine("inspect", "-f", "{{.State.Running}}", name, check_rc=False)
        if state.stdout.strip() != "true":
            raise CheckFailed(f"{name} stopped:\n{engine.logs(name)[-3000:]}")

    seconds = seconds_until_ready(url, alive, timeout_s, every_s=0.5)
    check(seconds is not None, f"{name}: /readyz not 200 in {timeout_s:.0f} s")
    return seconds


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
