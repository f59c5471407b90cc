"""The samplers behind make soak and make fault-run, without a server."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

from devtools.fault_run.load import Readiness
from devtools.soak import RssSampler


def test_rss_sampler_reads_each_workers_rss_until_stopped():
    fake_server = SimpleNamespace(workers=lambda: [os.getpid()])
    sampler = RssSampler(fake_server, every_s=0.02)
    sampler.start()
    time.sleep(0.2)
    sampler.stop()
    count = len(sampler.samples)
    assert count >= 3
    assert {pid for _, pid, _ in sampler.samples} == {os.getpid()}
    assert all(kib > 1000 for _, _, kib in sampler.samples)  # this process, in KiB
    assert sampler.worker_sets == [[os.getpid()]]
    time.sleep(0.1)
    assert len(sampler.samples) == count  # stopped means stopped


def test_readiness_records_an_unreachable_server_as_status_0():
    fake_server = SimpleNamespace(url="http://127.0.0.1:9")  # discard port: refused
    readiness = Readiness(fake_server, clock=time.monotonic)
    started = time.monotonic()
    readiness.start()
    time.sleep(0.6)
    readiness.stop()
    assert len(readiness.samples) >= 2
    assert {status for _, status in readiness.samples} == {0}
    assert readiness.ready_after(started) is None
