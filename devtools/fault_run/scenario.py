"""One scenario: load, inject the fault, remove it, wait for recovery, verify."""

from __future__ import annotations

import time
from dataclasses import dataclass

from devtools.fault_run.injectors import Fault
from devtools.fault_run.load import Load
from devtools.fault_run.load import Readiness
from devtools.fault_run.verify import verify
from devtools.server import LiveServer
from devtools.server import ready_workers


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
