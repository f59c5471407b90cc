"""One run per backend: a server of its own, its scenarios one after another."""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict
from pathlib import Path

from devtools.database import fresh_postgres_database
from devtools.database import postgres_reachable
from devtools.fault_run.injectors import disk_full
from devtools.fault_run.injectors import pg_ctl
from devtools.fault_run.injectors import postgres_restart
from devtools.fault_run.injectors import sqlite_read_only
from devtools.fault_run.injectors import worker_kill
from devtools.fault_run.scenario import Timing
from devtools.fault_run.scenario import run_scenario
from devtools.fault_run.verify import fork_check
from devtools.fault_run.volume import SmallVolume
from devtools.fault_run.volume import volume_unavailable_reason
from devtools.server import ROOT
from devtools.server import LiveServer
from devtools.server import start_server

FAULT_DATABASE = "snapclass_faults"


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
