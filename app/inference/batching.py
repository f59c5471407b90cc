"""Batching across requests: one inference loop per process.

Request threads decode and preprocess their own images, then queue them here.
One loop thread takes what is queued, up to ``max_size`` images, waiting at
most ``max_delay_ms`` after the oldest queued request for more, runs the
network once and hands each request its own rows (Triton's dynamic batcher,
in-process). On CPUs where a batch of 4 costs less per image than 4 single
images, the requests that would have waited for the model anyway share one
call to it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field

import numpy as np

from .errors import ModelUnavailable

log = logging.getLogger(__name__)

BatchObserver = Callable[[int, float], None]
# What the network returns for a batch: one array, or several (the softmax and
# the last conv block), each with one row per image.
Outputs = np.ndarray | tuple[np.ndarray | None, ...]


@dataclass
class Job:
    """One request's images on their way through the loop."""

    inputs: np.ndarray  # preprocessed images, one row each
    enqueued: float = field(default_factory=time.perf_counter)
    done: threading.Event = field(default_factory=threading.Event)
    outputs: Outputs | None = None  # this request's rows of each output
    error: BaseException | None = None
    queue_ms: float | None = None
    inference_ms: float = 0.0
    network_batch_size: int = 0  # images in the network batch that carried it

    @property
    def probabilities(self) -> np.ndarray | None:
        """The first output: the softmax."""
        return self.outputs[0] if isinstance(self.outputs, tuple) else self.outputs

    @property
    def features(self) -> np.ndarray | None:
        """The second output, when the network has one: the last conv block."""
        if isinstance(self.outputs, tuple) and len(self.outputs) > 1:
            return self.outputs[1]
        return None


class Batcher:
    """Groups queued requests into batches of at most ``max_size`` images.

    A request with more images than ``max_size`` runs as one batch of its own.
    """

    def __init__(
        self,
        run: Callable[[np.ndarray], Outputs],
        *,
        max_size: int,
        max_delay_ms: float = 0.0,
        on_batch: BatchObserver | None = None,
    ) -> None:
        if max_size < 1 or max_delay_ms < 0:
            raise ValueError("batch size must be >= 1 and delay >= 0")
        self.run = run
        self.max_size = max_size
        self.max_delay = max_delay_ms / 1000.0
        self.on_batch = on_batch
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="snapclass-batcher", daemon=True
                )
                self._thread.start()

    def close(self, timeout: float | None = None) -> None:
        """Stop taking requests; the loop finishes what is queued, then exits."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def infer(self, inputs: np.ndarray) -> Job:
        """Queue one request's preprocessed images and wait for its rows."""
        job = Job(inputs)
        with self._cond:
            if self._closed:
                raise ModelUnavailable("The server is shutting down.")
            self._queue.append(job)
            self._cond.notify_all()
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job

    def _loop(self) -> None:
        while True:
            jobs = self._take()
            if not jobs:
                return
            self._execute(jobs)

    def _take(self) -> list[Job]:
        """The next batch: wait for a first job, then for more until the
        oldest one has waited ``max_delay`` or the batch is full."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return []  # closed and drained
            jobs = [self._queue.popleft()]
            size = len(jobs[0].inputs)
            deadline = jobs[0].enqueued + self.max_delay
            while size < self.max_size:
                if self._queue:
                    if size + len(self._queue[0].inputs) > self.max_size:
                        break
                    jobs.append(self._queue.popleft())
                    size += len(jobs[-1].inputs)
                    continue
                remaining = deadline - time.perf_counter()
                if remaining <= 0 or self._closed:
                    break
                self._cond.wait(remaining)
            return jobs

    def _execute(self, jobs: list[Job]) -> None:
        started = time.perf_counter()
        for job in jobs:
            if job.queue_ms is None:
                job.queue_ms = (started - job.enqueued) * 1000.0
        try:
            if len(jobs) == 1:
                inputs = jobs[0].inputs
            else:
                inputs = np.concatenate([job.inputs for job in jobs])
            outputs = self.run(inputs)
        except Exception as exc:
            if len(jobs) > 1:
                # Find the request that broke the batch: each runs alone, and
                # only the guilty one fails.
                log.warning(
                    "batch of %d requests failed (%s); retrying each", len(jobs), exc
                )
                for job in jobs:
                    self._execute([job])
                return
            jobs[0].error = exc
            jobs[0].done.set()
            return
        inference_ms = (time.perf_counter() - started) * 1000.0
        start = 0
        for job in jobs:
            end = start + len(job.inputs)
            job.outputs = rows(outputs, start, end)
            job.inference_ms = inference_ms
            job.network_batch_size = len(inputs)
            start = end
            job.done.set()
        if self.on_batch is not None:
            self.on_batch(len(inputs), inference_ms)


def rows(outputs: Outputs, start: int, end: int) -> Outputs:
    """Rows ``start:end`` of every output (a missing output stays None)."""
    if isinstance(outputs, tuple):
        return tuple(None if out is None else out[start:end] for out in outputs)
    return outputs[start:end]
