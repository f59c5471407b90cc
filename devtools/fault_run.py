"""``make fault-run``: faults under load against a real Gunicorn deployment.

Clients post pairs of images with a bearer token while, one at a time:

* ``worker_kill``: a worker gets ``kill -9`` while requests are in flight;
* ``postgres_restart``: PostgreSQL is stopped, kept down, and started again;
* ``sqlite_read_only``: the SQLite database and its WAL become immutable
  (``chattr +i``; permissions mean nothing to root) on a small ext4 volume;
* ``disk_full``: that volume fills up (a filler file until ENOSPC).

Afterwards every prediction id answered 200 must exist in the database with
its thumbnail; requests that got an HTTP error must have left no row, no batch
may be half stored, failures must be 5xx with a JSON error (503 + Retry-After
for temporary causes), and the server must recover by itself: a new request
succeeds and ``/readyz`` answers 200, with no restart. For PostgreSQL it also
checks that no database connection is shared across a fork (master and
workers hold their own sockets).

Usage::

    .venv/bin/python -m devtools.fault_run                 # everything (~3 min)
    .venv/bin/python -m devtools.fault_run --backend sqlite --short

It needs root for ``chattr``, ``mount`` and ``pg_ctlcluster`` (scenarios it
cannot run are reported as skipped, with the reason) and writes
``artifacts/fault_run.json`` and ``artifacts/fault_run.md``.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import requests
import sqlalchemy as sa

from devtools.database import fresh_postgres_database
from devtools.database import postgres_reachable
from devtools.photos import photo_jpeg
from devtools.polling import Poller
from devtools.server import ROOT
from devtools.server import LiveServer
from devtools.server import connections_to_port
from devtools.server import ready_workers
from devtools.server import start_server
from devtools.server import tcp_socket_inodes

log = logging.getLogger("fault_run")

IMAGES_PER_REQUEST = 2
TEMPORARY_CODES = {"database_unavailable", "overloaded", "model_unavailable"}
FAULT_DATABASE = "snapclass_faults"


@dataclass
class Timing:
    """How long each phase lasts (``--short`` is what the CI test uses)."""

    warmup_s: float = 8.0
    hold_s: float = 8.0  # how long a fault lasts at least
    max_hold_s: float = 30.0  # ... and at most, waiting for failures to show
    min_failures: int = 3  # a fault is held until this many requests failed
    settle_s: float = 8.0  # load after recovery, before stopping
    recover_timeout_s: float = 90.0
    clients: int = 4

    @classmethod
    def short(cls) -> Timing:
        return cls(warmup_s=3, hold_s=2, max_hold_s=20, settle_s=2)


# --------------------------------------------------------------------------
# Load and readiness


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


# --------------------------------------------------------------------------
# Scenarios


@dataclass
class Fault:
    """A fault: ``begin`` injects it, ``end`` removes it (either may be None)."""

    name: str
    begin: Callable[[], dict]
    end: Callable[[], dict] | None = None
    # A kill needs no holding: the master replaces the worker by itself.
    hold: bool = True


def run_scenario(server: LiveServer, fault: Fault, timing: Timing) -> dict:
    """Load, inject the fault, remove it, wait for recovery, verify the rows."""
    load = Load(server, fault.name, timing.clients)
    readiness = Readiness(server, load.now)
    workers_before = server.workers()
    load.start()
    readiness.start()
    problems: list[str] = []
    report: dict = {"scenario": fault.name, "workers_before": workers_before}
    try:
        time.sleep(timing.warmup_s)
        if fault.name == "worker_kill":
            deadline = time.monotonic() + 10
            while load.in_flight < timing.clients - 1 and time.monotonic() < deadline:
                time.sleep(0.005)
            report["in_flight_at_fault"] = load.in_flight
        fault_start = load.now()
        report["fault"] = fault.begin()
        if fault.hold:
            held_until = fault_start + timing.hold_s
            limit = fault_start + timing.max_hold_s
            while load.now() < limit and (
                load.now() < held_until
                or load.failures_since(fault_start) < timing.min_failures
            ):
                time.sleep(0.1)
        if fault.end:
            report["fault"].update(fault.end())
        fault_end = load.now()
        report["fault_held_s"] = round(fault_end - fault_start, 2)
        recovery = wait_for_recovery(
            server, fault, report["fault"], load, readiness, fault_end, timing
        )
        report["recovery_s"] = recovery
        if recovery.get("timed_out"):
            problems.append(
                f"recovery: none within {timing.recover_timeout_s} s: {recovery}"
            )
        time.sleep(timing.settle_s)
    finally:
        load.stop()
        readiness.stop()
    report["readyz_during_fault"] = readiness.statuses_between(fault_start, fault_end)
    report.update(verify(server, fault, load.outcomes, problems))
    if fault.hold and report["answers"].get("failed", 0) == 0:
        problems.append("exercise: the fault failed no request; it was not tested")
    report["workers_after"] = server.workers()
    report["problems"] = problems
    report["ok"] = not problems
    return report


def wait_for_recovery(
    server: LiveServer,
    fault: Fault,
    fault_info: dict,
    load: Load,
    readiness: Readiness,
    fault_end: float,
    timing: Timing,
) -> dict:
    """Seconds from the fault's end until a request succeeds and /readyz is 200
    (and, after a kill, until the master has its full set of ready workers)."""
    deadline = time.monotonic() + timing.recover_timeout_s
    result: dict = {}
    expected_workers = int(server.env["WEB_CONCURRENCY"])
    # A killed worker stays in the master's children until it is reaped.
    killed = fault_info.get("killed_pid")
    while time.monotonic() < deadline:
        first_200 = load.first_success_after(fault_end)
        ready = readiness.ready_after(fault_end)
        if first_200 is not None:
            result["first_200"] = round(first_200 - fault_end, 2)
        if ready is not None:
            result["readyz_200"] = round(ready - fault_end, 2)
        if fault.name == "worker_kill" and "workers_ready" not in result:
            pids = server.workers()
            ready_pids = set(ready_workers(server.log()))
            if (
                len(pids) == expected_workers
                and set(pids) <= ready_pids
                and killed not in pids
            ):
                result["workers_ready"] = round(load.now() - fault_end, 2)
        done = "first_200" in result and "readyz_200" in result
        if fault.name == "worker_kill":
            done = done and "workers_ready" in result
        if done:
            return result
        time.sleep(0.05)
    result["timed_out"] = True
    return result


def worker_kill(server: LiveServer) -> Fault:
    def begin() -> dict:
        victim = server.workers()[0]
        os.kill(victim, 9)
        return {"killed_pid": victim}

    return Fault("worker_kill", begin, hold=False)


def pg_cluster() -> tuple[str, str]:
    version = sorted(os.listdir("/etc/postgresql"))[0]
    return version, "main"


def pg_ctl(action: str) -> float:
    """``pg_ctlcluster <version> main <action>``; returns the seconds it took."""
    started = time.monotonic()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", *pg_cluster(), action],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return round(time.monotonic() - started, 2)


def postgres_restart() -> Fault:
    """Stop PostgreSQL (fast: open connections are terminated), start it later."""

    def begin() -> dict:
        return {"stop_s": pg_ctl("stop")}

    def end() -> dict:
        started = pg_ctl("start")
        for _ in range(100):
            if postgres_reachable():
                break
            time.sleep(0.1)
        return {"start_s": started}

    return Fault("postgres_restart", begin, end)


def sqlite_read_only(database: Path) -> Fault:
    """Make the database file and its WAL immutable (EPERM on every write, even
    for root and through already open descriptors). The -shm file stays
    writable: it is memory-mapped, and an immutable mapping would SIGBUS."""
    files = [database, database.with_name(database.name + "-wal")]

    def begin() -> dict:
        subprocess.run(["chattr", "+i", *map(str, files)], check=True, timeout=10)
        return {"immutable": [f.name for f in files]}

    def end() -> dict:
        subprocess.run(["chattr", "-i", *map(str, files)], check=True, timeout=10)
        return {}

    return Fault("sqlite_read_only", begin, end)


def disk_full(mount_point: Path) -> Fault:
    """Fill the database's small volume with a filler file, then delete it."""
    filler = mount_point / "filler"

    def begin() -> dict:
        written = 0
        chunk = b"\0" * (1024 * 1024)
        with filler.open("wb") as handle:
            try:
                while True:
                    handle.write(chunk)
                    handle.flush()
                    written += len(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
            try:  # the last partial block
                os.fsync(handle.fileno())
            except OSError:
                pass
        free = shutil.disk_usage(mount_point).free
        return {"filler_mib": written // 2**20, "free_bytes_after": free}

    def end() -> dict:
        filler.unlink(missing_ok=True)
        return {"free_mib_after_cleanup": shutil.disk_usage(mount_point).free // 2**20}

    return Fault("disk_full", begin, end)


# --------------------------------------------------------------------------
# Verification


def verify(
    server: LiveServer, fault: Fault, outcomes: list[Outcome], problems: list[str]
) -> dict:
    """Compare what clients were told with what the database holds.

    Problems are prefixed by kind: ``rows:`` (an acknowledged row missing, a
    half-stored batch, a row left by a refused request) and ``answers:`` (a
    failure that is not a 503 with a JSON body and Retry-After).
    """
    scenario = fault.name
    answers = Counter()
    by_tag = {o.tag: o for o in outcomes}
    for outcome in outcomes:
        if outcome.status == 200:
            answers["200"] += 1
        elif outcome.status == 0:
            kind = (outcome.error or "?").split(":", 1)[0]
            answers[f"no answer ({kind})"] += 1
        else:
            answers[f"{outcome.status} {outcome.code}"] += 1
        check_answer(outcome, problems, killed=not fault.hold)
    answers["failed"] = sum(1 for o in outcomes if o.status != 200)

    engine = server.engine()
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT p.id, p.filename, t.data AS thumbnail "
                    "FROM predictions p LEFT JOIN thumbnails t "
                    "ON t.id = p.thumbnail_id WHERE p.filename LIKE :prefix"
                ),
                {"prefix": f"{scenario}-c%"},
            ).all()
    finally:
        engine.dispose()
    stored = {row.id: row for row in rows}
    rows_per_tag = Counter(row.filename.rsplit("-i", 1)[0] for row in rows)

    ok_ids = [i for o in outcomes if o.status == 200 for i in o.ids]
    missing = [i for i in ok_ids if i not in stored]
    no_thumbnail = [
        i
        for i in ok_ids
        if i in stored and not bytes(stored[i].thumbnail or b"").startswith(b"\xff\xd8")
    ]
    partial = {t: n for t, n in rows_per_tag.items() if n != IMAGES_PER_REQUEST}
    failed_but_stored = {
        t: by_tag[t].status
        for t in rows_per_tag
        if t in by_tag and by_tag[t].status not in (0, 200)
    }
    unanswered_but_stored = [
        t for t in rows_per_tag if t in by_tag and by_tag[t].status == 0
    ]
    unknown = [t for t in rows_per_tag if t not in by_tag]
    answered_ok_tags = {o.tag for o in outcomes if o.status == 200}
    if missing:
        problems.append(f"rows: {len(missing)} ids answered 200 are not stored")
    if no_thumbnail:
        problems.append(f"rows: {len(no_thumbnail)} rows answered 200 lack a thumbnail")
    if partial:
        problems.append(f"rows: half-stored batches: {partial}")
    # A 500 is already an answers problem; its stored rows are listed there.
    for tag, status in failed_but_stored.items():
        kind = "answers" if status == 500 else "rows"
        problems.append(f"{kind}: {tag} answered {status} but its rows are stored")
    if unknown:
        problems.append(f"rows: rows of requests never sent: {unknown}")
    return {
        "requests": len(outcomes),
        "answers": dict(answers),
        "no_answer_samples": sorted(
            {f"{o.started:.1f}s {o.error}" for o in outcomes if o.status == 0}
        )[:5],
        "ids_answered_200": len(ok_ids),
        "ids_found_with_thumbnail": len(ok_ids) - len(missing) - len(no_thumbnail),
        "rows_stored": len(rows),
        "rows_expected_from_200s": len(answered_ok_tags) * IMAGES_PER_REQUEST,
        # A worker killed after its commit but before its reply: complete rows
        # whose client saw a reset connection (allowed, reported).
        "requests_stored_without_answer": len(unanswered_but_stored),
        "half_stored_batches": len(partial),
    }


def check_answer(outcome: Outcome, problems: list[str], killed: bool) -> None:
    """A failure must be a 503 with a JSON error and Retry-After; no answer at
    all is only expected from a worker killed with the request in flight."""
    if outcome.status == 200:
        return
    label = f"answers: {outcome.tag}: {outcome.status} {outcome.code}"
    if outcome.status == 0:
        if not killed:
            problems.append(f"{label}: no HTTP answer ({outcome.error})")
    elif outcome.status < 500:
        problems.append(f"{label}: a client error for a server-side fault")
    elif not outcome.json_body or not outcome.code:
        problems.append(f"{label}: no JSON error body")
    elif outcome.status != 503 or outcome.code not in TEMPORARY_CODES:
        problems.append(f"{label}: expected 503 with a temporary error code")
    elif not outcome.retry_after:
        problems.append(f"{label}: 503 without Retry-After")


def fork_check(server: LiveServer, port: int = 5432) -> dict:
    """Which of the server's processes hold which database sockets: a socket in
    two processes (or in the master) is a connection that crossed a fork."""
    connections = connections_to_port(port)
    holders: dict[int, list[int]] = {}
    pids = [server.pid, *server.workers()]
    for pid in pids:
        for inode in tcp_socket_inodes(pid) & set(connections):
            holders.setdefault(inode, []).append(pid)
    per_pid = Counter(pid for owners in holders.values() for pid in owners)
    shared = {inode: owners for inode, owners in holders.items() if len(owners) > 1}
    return {
        "master_connections": per_pid.get(server.pid, 0),
        "worker_connections": {str(p): per_pid.get(p, 0) for p in pids[1:]},
        "shared_sockets": len(shared),
        "ok": per_pid.get(server.pid, 0) == 0
        and not shared
        and all(per_pid.get(p, 0) > 0 for p in pids[1:]),
    }


# --------------------------------------------------------------------------
# Volumes


class SmallVolume:
    """A small ext4 file system on a loop device (root only): it can fill up,
    and ext4 enforces ``chattr +i`` even on open files (tmpfs does not)."""

    def __init__(self, path: Path, size_mib: int = 96) -> None:
        self.path = path
        self.image = path.with_suffix(".img")
        self.size_mib = size_mib
        self.mounted = False

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with self.image.open("wb") as handle:
            handle.truncate(self.size_mib * 2**20)
        for command in (
            ["mkfs.ext4", "-q", "-F", "-m", "0", str(self.image)],
            ["mount", "-o", "loop", str(self.image), str(self.path)],
        ):
            result = subprocess.run(command, capture_output=True, text=True, timeout=60)
            if result.returncode != 0:
                raise OSError(f"{' '.join(command[:2])}: {result.stderr.strip()}")
        self.mounted = True

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["chattr", "-R", "-i", str(self.path)], capture_output=True)
            subprocess.run(["umount", str(self.path)], capture_output=True, timeout=60)
            self.mounted = False
        self.image.unlink(missing_ok=True)


def volume_unavailable_reason(workdir: Path) -> str | None:
    """Why the SQLite volume scenarios cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (mount a loop device, chattr +i)"
    for tool in ("mkfs.ext4", "mount", "chattr"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    volume = SmallVolume(workdir / "probe-volume", size_mib=8)
    try:
        volume.mount()
        probe = volume.path / "probe"
        with probe.open("wb") as handle:
            subprocess.run(["chattr", "+i", str(probe)], check=True, timeout=10)
            try:
                handle.write(b"x")
                handle.flush()
                return "the immutable flag is not enforced on open files here"
            except OSError:
                pass
            finally:
                subprocess.run(["chattr", "-i", str(probe)], timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot mount a small ext4 volume: {exc}"
    finally:
        volume.unmount()
    return None


# --------------------------------------------------------------------------
# Runs


def run_postgres(workdir: Path, timing: Timing, model_cache: Path | None) -> dict:
    """Worker kill and PostgreSQL restart against PostgreSQL."""
    if not postgres_reachable():
        return {"skipped": "PostgreSQL is not reachable on 127.0.0.1:5432"}
    if os.geteuid() != 0 or not shutil.which("pg_ctlcluster"):
        return {"skipped": "restarting PostgreSQL needs root and pg_ctlcluster"}
    url = fresh_postgres_database(FAULT_DATABASE)
    server = start_server(
        workdir / "postgres", url, model_cache_dir=model_cache, RESULT_CACHE="false"
    )
    try:
        scenarios = [run_scenario(server, worker_kill(server), timing)]
        forks = fork_check(server)  # after load: every worker is connected
        scenarios.append(run_scenario(server, postgres_restart(), timing))
        forks_after = fork_check(server)
        return {
            "backend": "postgresql",
            "server_start_s": round(server.started_s, 1),
            "fork_check": forks,
            "fork_check_after_restart": forks_after,
            "scenarios": scenarios,
            "server_log_tracebacks": server.log().count("Traceback"),
        }
    finally:
        server.stop()
        keep_log(server, "postgres")
        if not postgres_reachable():  # never leave the shared server down
            pg_ctl("start")


def run_sqlite(workdir: Path, timing: Timing, model_cache: Path | None) -> dict:
    """Worker kill, read-only database and full disk against SQLite."""
    reason = volume_unavailable_reason(workdir)
    volume = None
    if reason is None:
        volume = SmallVolume(workdir / "sqlite-volume")
        volume.mount()
        database = volume.path / "snapclass.sqlite3"
    else:
        database = workdir / "snapclass.sqlite3"
    try:
        server = start_server(
            workdir / "sqlite",
            f"sqlite:///{database}",
            model_cache_dir=model_cache,
            RESULT_CACHE="false",
        )
        try:
            scenarios = [run_scenario(server, worker_kill(server), timing)]
            if volume:
                scenarios.append(
                    run_scenario(server, sqlite_read_only(database), timing)
                )
                scenarios.append(run_scenario(server, disk_full(volume.path), timing))
            else:
                for name in ("sqlite_read_only", "disk_full"):
                    scenarios.append({"scenario": name, "skipped": reason, "ok": True})
            return {
                "backend": "sqlite",
                "server_start_s": round(server.started_s, 1),
                "scenarios": scenarios,
                "server_log_tracebacks": server.log().count("Traceback"),
            }
        finally:
            server.stop()
            keep_log(server, "sqlite")
    finally:
        if volume:
            volume.unmount()


LOGS_DIR = ROOT / "artifacts"


def keep_log(server: LiveServer, backend: str) -> None:
    """Copy the server's log next to the report (the work directory is temporary)."""
    LOGS_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(server.log_path, LOGS_DIR / f"fault_run-{backend}-server.log")


def run(
    backends: list[str],
    timing: Timing,
    workdir: Path,
    model_cache: Path | None = None,
) -> dict:
    """Run the scenarios of ``backends``; the report has ``ok`` and ``problems``."""
    report: dict = {"timing": asdict(timing), "runs": []}
    for backend in backends:
        runner = run_postgres if backend == "postgres" else run_sqlite
        report["runs"].append(runner(workdir / backend, timing, model_cache))
    problems = []
    for entry in report["runs"]:
        for scenario in entry.get("scenarios", []):
            problems += [
                f"{scenario['scenario']}: {p}" for p in scenario.get("problems", [])
            ]
        for key in ("fork_check", "fork_check_after_restart"):
            if key in entry and not entry[key]["ok"]:
                problems.append(f"fork: {key}: {entry[key]}")
    report["problems"] = problems
    report["ok"] = not problems
    return report


def markdown(report: dict) -> str:
    """The report as tables, for docs/reliability.md and the console."""
    lines = [
        "| backend | scenario | requests | answers | ids 200 / found | "
        "stored w/o answer | half batches | fault held s | recovery s (first 200 / "
        "readyz 200 / workers) | readyz during fault |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in report["runs"]:
        if "skipped" in entry:
            lines.append(f"| - | - | skipped: {entry['skipped']} |||||||")
            continue
        for s in entry["scenarios"]:
            if "skipped" in s:
                lines.append(f"| {entry['backend']} | {s['scenario']} | skipped: "
                             f"{s['skipped']} |||||||")  # fmt: skip
                continue
            answers = ", ".join(
                f"{k}: {v}" for k, v in s["answers"].items() if k != "failed"
            )
            times = " / ".join(
                str(s["recovery_s"].get(key, "-"))
                for key in ("first_200", "readyz_200", "workers_ready")
            )
            lines.append(
                f"| {entry['backend']} | {s['scenario']} | {s['requests']} | {answers} "
                f"| {s['ids_answered_200']} / {s['ids_found_with_thumbnail']} "
                f"| {s['requests_stored_without_answer']} | {s['half_stored_batches']} "
                f"| {s['fault_held_s']} | {times} | {s['readyz_during_fault']} |"
            )
    for entry in report["runs"]:
        if "fork_check" in entry:
            lines += ["", f"Fork check ({entry['backend']}): {entry['fork_check']}"]
            lines.append(f"After the restart: {entry['fork_check_after_restart']}")
    lines += ["", "Problems: " + ("; ".join(report["problems"]) or "none")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backend", choices=["all", "postgres", "sqlite"], default="all"
    )
    parser.add_argument("--short", action="store_true", help="the CI durations")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "fault_run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    timing = Timing.short() if args.short else Timing()
    timing.clients = args.clients
    backends = ["postgres", "sqlite"] if args.backend == "all" else [args.backend]
    with tempfile.TemporaryDirectory(prefix="snapclass-faults-") as tmp:
        report = run(backends, timing, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    text = markdown(report)
    args.out.with_suffix(".md").write_text(text)
    log.info("%s", text)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
