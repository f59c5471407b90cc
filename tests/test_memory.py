"""Workers give large freed buffers (uploads, decoded images) back to the OS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Frees a 2 MB buffer, then allocates another and counts glibc's mmapped chunks:
# with a fixed threshold the second one is mmapped too (and so returned on free).
SCRIPT = """
import ctypes, sys
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "fixed":
    from app.memory import limit_heap_retention
    assert limit_heap_retention()
first = bytearray(2 << 20)
del first
before = libc.mallinfo2().hblks
second = bytearray(2 << 20)
print(libc.mallinfo2().hblks - before)
"""


def run_python(script: str, *args: str) -> str:
    """Run ``script`` in a fresh interpreter at the project root; its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def mmapped_after_free(mode: str) -> int:
    return int(run_python(SCRIPT, mode))


def glibc_has_mallinfo2() -> bool:
    import ctypes

    try:
        return hasattr(ctypes.CDLL(None), "mallinfo2")
    except OSError:
        return False


@pytest.mark.skipif(not glibc_has_mallinfo2(), reason="needs glibc 2.33+")
def test_large_buffers_stay_mmapped_after_a_free():
    # glibc's default: the first free raises the threshold, the next 2 MB
    # buffer comes from the heap (kept after free); fixed: mmapped again.
    assert mmapped_after_free("default") == 0
    assert mmapped_after_free("fixed") == 1


def test_gunicorn_workers_fix_the_threshold_after_fork():
    """gunicorn.conf.py's post_fork hook calls limit_heap_retention (run in a
    child: loading the config sets environment variables)."""
    script = (
        "import app.memory\n"
        "calls = []\n"
        "app.memory.limit_heap_retention = lambda: calls.append(1) or True\n"
        "namespace = {'__file__': 'gunicorn.conf.py'}\n"
        "exec(open('gunicorn.conf.py').read(), namespace)\n"
        "namespace['post_fork'](None, None)\n"
        "print(len(calls))\n"
    )
    assert run_python(script) == "1"
