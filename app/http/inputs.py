"""The base of the ``wsgi.input`` wrappers that the WSGI layers stack."""

from __future__ import annotations

import io
from collections.abc import Callable


class WrappedInput(io.RawIOBase):
    """A readable ``wsgi.input`` in front of another stream.

    Every read goes through :meth:`_read` with the method of :meth:`_source`
    that it calls, so a subclass changes one method to count, time or buffer
    reads (``connections.CountingInput``, ``body_deadline.DeadlineInput``,
    ``whole_body.WholeBody``).
    """

    def __init__(self, stream) -> None:
        super().__init__()
        self._stream = stream

    def _source(self):
        """The stream reads come from (the wrapped one)."""
        return self._stream

    def _read(self, method: Callable[[int], bytes], size: int) -> bytes:
        return method(size)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._read(self._source().read, size)

    def readline(self, size: int = -1) -> bytes:
        return self._read(self._source().readline, size)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
