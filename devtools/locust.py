"""The one way tools launch Locust: headless, with a profile, CSVs collected.

``make bench``, ``make stress`` and ``make soak`` all call :func:`run` with a
:class:`Profile`; Locust writes ``<prefix>_stats.csv``, ``_stats_history.csv``,
``_failures.csv`` and ``_exceptions.csv`` (and ``<prefix>.html`` when asked),
its output goes to ``<prefix>.log``, and :class:`LocustRun` reads them back.
The users come from ``locustfile.py`` (see its docstring for the
``SNAPCLASS_*`` settings).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@dataclass
class Profile:
    """Who Locust simulates and for how long (``SNAPCLASS_WAIT`` think time)."""

    users: int
    spawn_rate: float
    duration_s: int
    wait: str = "between:1:5"  # or "none"
    tags: list[str] = field(default_factory=list)
    user_classes: list[str] = field(default_factory=list)
    # A LoadTestShape file loaded beside the locustfile; it sets users itself.
    shape: str | None = None
    stop_timeout_s: int = 10


def command(url: str, prefix: Path, profile: Profile, html: bool) -> list[str]:
    """The ``locust`` command line for ``profile`` against ``url``."""
    files = "locustfile.py" + (f",{profile.shape}" if profile.shape else "")
    out = [str(BIN / "locust"), "-f", files, "--headless", "--host", url]
    out += ["--csv", str(prefix), "--only-summary"]
    out += ["--stop-timeout", str(profile.stop_timeout_s)]
    if html:
        out += ["--html", f"{prefix}.html"]
    if not profile.shape:
        out += ["-u", str(profile.users), "-r", f"{profile.spawn_rate:g}"]
        out += ["-t", f"{profile.duration_s}s"]
    if profile.tags:
        out += ["--tags", *profile.tags]
    return out + list(profile.user_classes)


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file, or none when it is missing."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@dataclass
class LocustRun:
    """What one headless run left behind."""

    prefix: Path
    exit_code: int | None
    wall_s: float

    def stats(self) -> dict[str, dict[str, str]]:
        """``_stats.csv`` by request name (``Aggregated`` for all of them)."""
        return {row["Name"]: row for row in read_csv(Path(f"{self.prefix}_stats.csv"))}

    def failures(self) -> list[dict[str, str]]:
        return read_csv(Path(f"{self.prefix}_failures.csv"))

    def output(self) -> str:
        return Path(f"{self.prefix}.log").read_text(errors="replace")


def run(
    url: str,
    prefix: Path,
    profile: Profile,
    *,
    env: dict[str, str] | None = None,
    html: bool = False,
    every_second: Callable[[int], None] | None = None,
) -> LocustRun:
    """Run Locust headless until it ends (killed ``duration + 180`` s in).

    ``env`` adds ``SNAPCLASS_*`` settings; ``every_second(pid)`` is called
    while Locust runs (stress samples CPU and memory with it). Raises
    ``RuntimeError`` when Locust wrote no statistics.
    """
    environment = {**os.environ, "SNAPCLASS_WAIT": profile.wait, **(env or {})}
    started = time.monotonic()
    deadline = started + profile.duration_s + 180
    with Path(f"{prefix}.log").open("w") as log:
        process = subprocess.Popen(
            command(url, prefix, profile, html),
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            while process.poll() is None and time.monotonic() < deadline:
                time.sleep(1.0)
                if every_second and process.poll() is None:
                    every_second(process.pid)
        finally:
            if process.poll() is None:
                process.terminate()
            process.wait(timeout=60)
    result = LocustRun(prefix, process.returncode, time.monotonic() - started)
    if "Aggregated" not in result.stats():
        raise RuntimeError(f"Locust wrote no statistics; see {prefix}.log")
    return result
