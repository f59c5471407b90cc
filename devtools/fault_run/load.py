"""The load: clients posting images, and a poller of /readyz, both timed."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field

import requests

from devtools.photos import photo_jpeg
from devtools.polling import Poller
from devtools.server import LiveServer

IMAGES_PER_REQUEST = 2


@dataclass
class Outcome:
    """One /predict request as the client saw it (times relative to start)."""

    tag: str
    started: float
    finished: float
    status: int  # 0: no HTTP answer (connection reset, timeout)
    code: str | None = None
    json_body: bool = False
    retry_after: str | None = None
    ids: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    error: str | None = None


class Load:
    """``clients`` threads posting IMAGES_PER_REQUEST images per request.

    Each image's file name carries the request's tag, so rows can be traced
    back to the request that stored them.
    """

    def __init__(self, server: LiveServer, scenario: str, clients: int) -> None:
        self.server = server
        self.scenario = scenario
        self.clients = clients
        self.outcomes: list[Outcome] = []
        self.in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._images = [photo_jpeg((640, 480), quality=85 + i) for i in range(2)]
        self.t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def start(self) -> None:
        for client in range(self.clients):
            thread = threading.Thread(target=self._run, args=(client,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _run(self, client: int) -> None:
        session = requests.Session()
        number = 0
        while not self._stop.is_set():
            number += 1
            tag = f"{self.scenario}-c{client}-r{number}"
            with self._lock:
                self.in_flight += 1
            outcome = self._post(session, tag)
            with self._lock:
                self.in_flight -= 1
                self.outcomes.append(outcome)
            if outcome.status != 200:
                time.sleep(0.1)  # a client backs off a little after a failure

    def _post(self, session: requests.Session, tag: str) -> Outcome:
        """One request on a fresh connection ("Connection: close"): Gunicorn
        closes a keep-alive connection whose unread body exceeds 64 KiB (an
        early error reply), and the next request on it would fail unsent."""
        files = [
            ("image", (f"{tag}-i{i}.jpg", self._images[i % 2], "image/jpeg"))
            for i in range(IMAGES_PER_REQUEST)
        ]
        started = self.now()
        try:
            response = session.post(
                self.server.url + "/predict",
                headers={**self.server.headers, "Connection": "close"},
                files=files,
                timeout=30,
            )
        except requests.RequestException as exc:
            session.close()  # the pooled connection is dead
            error = f"{type(exc).__name__}: {exc}"[:300]
            return Outcome(tag, started, self.now(), 0, error=error)
        outcome = Outcome(tag, started, self.now(), response.status_code)
        outcome.retry_after = response.headers.get("Retry-After")
        try:
            body = response.json()
            outcome.json_body = True
        except ValueError:
            body = {}
        if response.status_code == 200:
            results = body.get("results", [])
            outcome.ids = [r["id"] for r in results]
            outcome.names = [r["filename"] for r in results]
        else:
            outcome.code = (body.get("error") or {}).get("code")
            outcome.error = (body.get("error") or {}).get("message")
        return outcome

    def failures_since(self, t: float) -> int:
        with self._lock:
            return sum(1 for o in self.outcomes if o.started >= t and o.status != 200)

    def first_success_after(self, t: float) -> float | None:
        with self._lock:
            done = [
                o.finished for o in self.outcomes if o.status == 200 and o.started >= t
            ]
        return min(done) if done else None


class Readiness(Poller):
    """Polls /readyz every 0.25 s and remembers (time, status)."""

    def __init__(self, server: LiveServer, clock: Callable[[], float]) -> None:
        super().__init__(every_s=0.25)
        self.server = server
        self.clock = clock
        self.samples: list[tuple[float, int]] = []

    def sample(self) -> None:
        try:
            status = requests.get(self.server.url + "/readyz", timeout=2).status_code
        except requests.RequestException:
            status = 0
        self.samples.append((self.clock(), status))

    def ready_after(self, t: float) -> float | None:
        """When /readyz answered 200 for good after ``t`` (None: not yet)."""
        recovered = None
        for at, status in list(self.samples):
            if at < t:
                continue
            if status == 200 and recovered is None:
                recovered = at
            elif status != 200:
                recovered = None
        return recovered

    def statuses_between(self, start: float, end: float) -> dict[str, int]:
        return dict(
            Counter(str(s) for at, s in list(self.samples) if start <= at <= end)
        )
