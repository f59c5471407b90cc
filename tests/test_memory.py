"""Workers give large freed buffers (uploads, decoded images) back to the OS."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_python

ROOT = Path(__file__).resolve().parent.parent

# Prints how many of glibc's mmapped chunks each step added, and how many
# arenas eight threads allocating at once ended up with (malloc_info's heaps).
SCRIPT = """
import ctypes, os, re, sys, tempfile, threading
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.fopen.restype = ctypes.c_void_p
libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
libc.fclose.argtypes = (ctypes.c_void_p,)
if sys.argv[1] == "tuned":
    from app.memory import limit_heap_retention
    assert limit_heap_retention()
def mmapped(size):
    before = libc.mallinfo2().hblks
    buffer = bytearray(size)
    return libc.mallinfo2().hblks - before
upload = mmapped(1 << 20)  # an upload-sized buffer, nothing freed before
big = bytearray(3 << 20)
del big
big_again = mmapped(3 << 20)  # a big upload, after one was freed
start, held = threading.Barrier(8), []
def allocate():
    start.wait()
    held.append([bytearray(64 << 10) for _ in range(4)])
    start.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
path = tempfile.mktemp()
stream = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, stream)
libc.fclose(stream)
heaps = len(re.findall("<heap nr=", open(path).read()))
os.unlink(path)
print(upload, big_again, heaps)
"""


def heap_behaviour(mode: str) -> tuple[int, int, int]:
    upload, big_again, heaps = run_python(SCRIPT, mode).split()
    return int(upload), int(big_again), int(heaps)


def glibc_has_mallinfo2() -> bool:
    import ctypes

    try:
        return hasattr(ctypes.CDLL(None), "mallinfo2")
    except OSError:
        return False


needs_glibc = pytest.mark.skipif(not glibc_has_mallinfo2(), reason="needs glibc 2.33+")


@needs_glibc
def test_glibc_defaults_fault_in_uploads_and_keep_big_ones():
    """The behaviour the settings change (so that the next test means something):
    an upload-sized buffer is mmapped, a big one freed raises the threshold so
    the next comes from the heap, and eight threads get more than two arenas."""
    upload, big_again, heaps = heap_behaviour("default")
    assert upload == 1
    assert big_again == 0
    assert heaps > 2


@needs_glibc
def test_workers_reuse_upload_buffers_return_big_ones_and_use_two_arenas():
    upload, big_again, heaps = heap_behaviour("tuned")
    assert upload == 0  # from the heap: reused, no page faults
    assert big_again == 1  # still mmapped: given back to the OS on free
    assert heaps <= 2


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
