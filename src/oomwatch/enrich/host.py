"""This machine's identity: node name, kernel release, boot id."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

from oomwatch.model import NodeInfo


def read_boot_id(proc_root: Path) -> str:
    """This boot's id, which tells a restart from a reboot."""
    try:
        return (proc_root / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    except OSError:
        return "unknown"


def this_node(boot_id: str, hostname: str | None = None) -> NodeInfo:
    """This machine; the node name from the settings wins over NODE_NAME and the hostname."""
    node = hostname or os.environ.get("NODE_NAME") or socket.gethostname()
    return NodeInfo(node, platform.release(), boot_id)


def read_uptime(proc_root: Path) -> float | None:
    """Seconds since boot (the kernel's clock of /dev/kmsg stamps), or None."""
    try:
        return float((proc_root / "uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
