"""The container engine (docker or podman), and how a check passes or fails."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

log = logging.getLogger("image-test")
ROOT = Path(__file__).resolve().parents[2]


class CheckFailed(Exception):
    """A check did not hold; the message says which and what was seen."""


def check(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def passed(message: str) -> None:
    log.info("  ok  %s", message)


def engine_command(choice: str | None) -> list[str]:
    """docker when its daemon answers, else podman (runc: see shared/container)."""
    candidates = [choice] if choice else ["docker", "podman"]
    for name in candidates:
        path = shutil.which(name)
        if path is None:
            continue
        probe = subprocess.run(
            [path, "info"], capture_output=True, text=True, timeout=60, check=False
        )
        if probe.returncode == 0:
            return [path]
    raise SystemExit(f"image-test: none of {', '.join(candidates)} works here")


@dataclass
class Engine:
    """The container engine, and every container this run started."""

    command: list[str]
    started: list[str] = field(default_factory=list)

    @property
    def is_podman(self) -> bool:
        return Path(self.command[0]).name == "podman"

    def __call__(
        self, *args: str, timeout: float = 120, check_rc: bool = True
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [*self.command, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check_rc and result.returncode != 0:
            raise CheckFailed(
                f"{' '.join(args[:2])} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout)[-2000:]}"
            )
        return result

    def build(self, image: str, weights: str) -> float:
        args = ["build", "--network=host", "-t", image]
        args += ["--build-arg", f"MODEL_WEIGHTS={weights}"]
        if self.is_podman:
            args += ["--format", "docker"]
        started = time.monotonic()
        process = subprocess.run([*self.command, *args, str(ROOT)], check=False)
        check(process.returncode == 0, f"the image build failed ({process.returncode})")
        return time.monotonic() - started

    def run(
        self,
        image: str,
        name: str,
        env: dict[str, str],
        *extra: str,
        command: tuple[str, ...] = (),
        publish: int | None = None,
    ) -> str:
        """Start a container in the background: its port 8000 published on
        ``publish`` of the loopback, or else on the host's network."""
        args = ["run", "-d", "--name", name]
        if publish:
            args += ["-p", f"127.0.0.1:{publish}:8000"]
        else:
            args += ["--network", "host"]
        for key, value in env.items():
            args += ["-e", f"{key}={value}"]
        self.started.append(name)
        self(*args, *extra, image, *command)
        return name

    def logs(self, name: str) -> str:
        result = self("logs", name, check_rc=False)
        return result.stdout + result.stderr

    def stop(self, name: str) -> int:
        """SIGTERM, then wait for the graceful exit; the container's exit code."""
        self("stop", "-t", "40", name, timeout=90, check_rc=False)
        state = self("inspect", "-f", "{{.State.ExitCode}}", name, check_rc=False)
        return int(state.stdout.strip() or -1)

    def remove_all(self) -> None:
        for name in reversed(self.started):
            self("rm", "-f", name, timeout=90, check_rc=False)
        self.started.clear()
