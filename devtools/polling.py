"""A background thread that samples something at a fixed interval until stopped."""

from __future__ import annotations

import threading


class Poller:
    """Calls :meth:`sample` every ``every_s`` seconds in a daemon thread, from
    :meth:`start` until :meth:`stop`. Subclasses say what one sample is."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def sample(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every_s)
