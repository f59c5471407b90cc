"""A shortened ``make fault-run`` (devtools/fault_run/) against real servers.

CI runs ``make test`` twice: the SQLite pass runs the SQLite faults (a worker
killed with ``kill -9``, the database made immutable, its disk full) and the
PostgreSQL pass runs the PostgreSQL ones (``kill -9``, a PostgreSQL restart,
and the check that no database connection crosses a fork). Each scenario runs
once per module; the tests below read its report.
"""

from __future__ import annotations

import json
import os

import pytest

from devtools.fault_run.report import markdown
from devtools.fault_run.runs import run_postgres
from devtools.fault_run.runs import run_sqlite
from devtools.fault_run.scenario import Timing
from devtools.server import ROOT

pytestmark = [pytest.mark.server, pytest.mark.slow]

ON_POSTGRES = os.environ.get("TEST_DATABASE_URL", "").startswith("postgres")


def scenario(report: dict, name: str) -> dict:
    (found,) = [s for s in report["scenarios"] if s["scenario"] == name]
    if "skipped" in found:
        pytest.skip(found["skipped"])
    return found


def problems(found: dict, kind: str) -> list[str]:
    return [p for p in found["problems"] if p.startswith(kind + ":")]


def save(report: dict, backend: str) -> None:
    out = ROOT / "artifacts" / f"fault_run_ci_{backend}"
    out.parent.mkdir(exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    found = [
        f"{s['scenario']}: {p}"
        for s in report["scenarios"]
        for p in s.get("problems", [])
    ]
    wrapped = {"runs": [report], "problems": found, "ok": not found}
    out.with_suffix(".md").write_text(markdown(wrapped))


@pytest.fixture(scope="module")
def postgres_report(tmp_path_factory, model_cache_dir):
    if not ON_POSTGRES:
        pytest.skip("PostgreSQL faults run in the PostgreSQL pass (TEST_DATABASE_URL)")
    report = run_postgres(
        tmp_path_factory.mktemp("faults-pg"), Timing.short(), model_cache_dir
    )
    if "skipped" in report:
        pytest.skip(report["skipped"])
    save(report, "postgres")
    return report


@pytest.fixture(scope="module")
def sqlite_report(tmp_path_factory, model_cache_dir):
    if ON_POSTGRES:
        pytest.skip("SQLite faults run in the SQLite pass")
    report = run_sqlite(
        tmp_path_factory.mktemp("faults-sqlite"),
        Timing.short(),
        model_cache_dir,
    )
    save(report, "sqlite")
    return report


def assert_rows_and_recovery(found: dict) -> None:
    """Every id answered 200 is stored with its thumbnail, no batch is half
    stored, refused requests left nothing, and the server recovered alone."""
    assert not problems(found, "rows"), found["problems"]
    assert found["ids_answered_200"] > 0
    assert found["ids_found_with_thumbnail"] == found["ids_answered_200"]
    assert found["half_stored_batches"] == 0
    assert not problems(found, "recovery"), found["recovery_s"]
    assert {"first_200", "readyz_200"} <= set(found["recovery_s"])


# --------------------------------------------------------------------------
# kill -9 (both passes, on that pass's database)


@pytest.fixture(scope="module")
def kill_report(request):
    name = "postgres_report" if ON_POSTGRES else "sqlite_report"
    return scenario(request.getfixturevalue(name), "worker_kill")


def test_worker_kill_loses_no_acknowledged_row(kill_report):
    assert_rows_and_recovery(kill_report)
    # Only requests in flight on the killed worker go unanswered; every other
    # answer is a success (the other worker kept serving).
    assert not problems(kill_report, "answers"), kill_report["problems"]
    unanswered = kill_report["answers"].get("failed", 0)
    assert unanswered <= 2 * Timing.short().clients
    assert kill_report["fault"]["killed_pid"] not in kill_report["workers_after"]


def test_worker_kill_is_replaced_by_the_master(kill_report):
    recovery = kill_report["recovery_s"]
    assert "workers_ready" in recovery, recovery
    assert recovery["workers_ready"] < 60
    assert len(kill_report["workers_after"]) == len(kill_report["workers_before"])


# --------------------------------------------------------------------------
# PostgreSQL


def test_postgres_restart_loses_no_acknowledged_row(postgres_report):
    found = scenario(postgres_report, "postgres_restart")
    assert_rows_and_recovery(found)
    assert not problems(found, "exercise"), found["answers"]


def test_postgres_restart_recovers_without_a_server_restart(postgres_report):
    found = scenario(postgres_report, "postgres_restart")
    # /readyz saw the outage and came back; the same workers serve afterwards.
    assert found["readyz_during_fault"].get("503", 0) > 0, found
    assert found["workers_after"] == found["workers_before"]
    assert found["recovery_s"]["first_200"] < 30


def test_postgres_restart_failures_are_503_with_json(postgres_report):
    found = scenario(postgres_report, "postgres_restart")
    assert not problems(found, "answers"), problems(found, "answers")[:5]


def test_no_database_connection_crosses_a_fork(postgres_report):
    """The master holds no PostgreSQL socket and no socket is in two processes:
    each worker built its own engine after the fork."""
    for key in ("fork_check", "fork_check_after_restart"):
        check = postgres_report[key]
        assert check["master_connections"] == 0, check
        assert check["shared_sockets"] == 0, check
        assert all(n > 0 for n in check["worker_connections"].values()), check


# --------------------------------------------------------------------------
# SQLite on a small ext4 volume


@pytest.mark.parametrize("name", ["sqlite_read_only", "disk_full"])
def test_sqlite_volume_fault_is_a_clean_503(sqlite_report, name):
    found = scenario(sqlite_report, name)
    assert_rows_and_recovery(found)
    assert not problems(found, "exercise"), found["answers"]
    assert not problems(found, "answers"), found["problems"]
    assert found["answers"].get("503 database_unavailable", 0) > 0
