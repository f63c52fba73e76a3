"""Records of the machine's memory: samples, processes, cgroups, and condition changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["firing", "resolved"]
Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True, slots=True)
class ProcInfo:
    """What the sampler knows of one process."""

    pid: int
    start_ticks: int
    comm: str
    cmdline: tuple[str, ...]
    uid: int | None
    user: str | None
    cgroup: str | None
    rss_kb: int


@dataclass(frozen=True, slots=True)
class CgroupMem:
    """A memory cgroup with a limit: usage and limit in bytes, and its OOM-kill counter."""

    path: str
    usage_bytes: int
    limit_bytes: int
    oom_kills: int | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One sample of the machine's memory."""

    time: float
    mem_total_kb: int
    mem_available_kb: int
    swap_total_kb: int
    swap_free_kb: int
    psi_some_avg10: float | None
    psi_full_avg10: float | None
    vmstat_oom_kill: int | None
    cgroups: tuple[CgroupMem, ...]
    top: tuple[ProcInfo, ...]
    processes: int

    @property
    def mem_available_pct(self) -> float:
        """Available memory as a percentage of the total."""
        return 100.0 * self.mem_available_kb / self.mem_total_kb if self.mem_total_kb else 100.0

    def to_dict(self) -> dict[str, object]:
        """The memory figures an incident carries."""
        return {
            "mem_total_kb": self.mem_total_kb,
            "mem_available_kb": self.mem_available_kb,
            "swap_total_kb": self.swap_total_kb,
            "swap_free_kb": self.swap_free_kb,
            "psi_some_avg10": self.psi_some_avg10,
            "psi_full_avg10": self.psi_full_avg10,
        }


@dataclass(frozen=True, slots=True)
class ConditionChange:
    """A condition opening, escalating or resolving."""

    kind: str
    subject: str
    status: Status
    severity: Severity
    value: float
    threshold: float
    opened_at: float
    at: float
    summary: str
    forecast_s: float | None = None
    usage_bytes: int | None = None
    limit_bytes: int | None = None
    repeat: bool = False  # still firing, reported again
