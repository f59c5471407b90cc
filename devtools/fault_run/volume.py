"""The small ext4 volume that the SQLite faults need, and whether it can be had."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


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
