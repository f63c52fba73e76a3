"""Read the /dev/kmsg records written after a point, as tests of real kills need."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path


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


def write_kmsg(texts: Iterable[str]) -> None:
    """Records into /dev/kmsg (facility user), with the kernel's write rate limit lifted."""
    knob = Path("/proc/sys/kernel/printk_devkmsg")
    old = knob.read_text().strip()
    knob.write_text("on\n")
    try:
        fd = os.open("/dev/kmsg", os.O_WRONLY)
        try:
            for t in texts:
                os.write(fd, f"<6>{t}\n".encode())
        finally:
            os.close(fd)
    finally:
        knob.write_text(old + "\n")
