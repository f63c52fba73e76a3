"""Read the /dev/kmsg records written after a point, as tests of real kills need."""

from __future__ import annotations

import os
import time


class KmsgTail:
    """Opens /dev/kmsg at its end; `read()` returns the records written since."""

    def __init__(self, path: str = "/dev/kmsg") -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self.fd, 0, os.SEEK_END)

    def read(self, until: bytes | None = None, timeout_s: float = 5.0) -> bytes:
        """All new records; with `until`, wait until a record containing it has arrived."""
        out = b""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                out += os.read(self.fd, 16384)
                continue
            except BlockingIOError:
                pass
            except BrokenPipeError:
                continue
            if until is None or until in out or time.monotonic() > deadline:
                return out
            time.sleep(0.02)

    def close(self) -> None:
        """Close the file descriptor."""
        os.close(self.fd)
