"""The faults: each one's ``begin`` injects it and its ``end`` removes it."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devtools.database import postgres_reachable
from devtools.server import LiveServer


@dataclass
class Fault:
    """A fault: ``begin`` injects it, ``end`` removes it (either may be None)."""

    name: str
    begin: Callable[[], dict]
    end: Callable[[], dict] | None = None
    # A kill needs no holding: the master replaces the worker by itself.
    hold: bool = True


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
