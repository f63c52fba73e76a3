"""Memory conditions: thresholds with a minimum duration and hysteresis, and a forecast.

A condition opens when its value has been past the threshold for `min_duration_s`,
and resolves when it has been back past the threshold plus the hysteresis for as
long. While it is open, a steady trend gives the time left before the limit.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from oomwatch.model import ConditionChange, Severity, Snapshot
from oomwatch.settings import Thresholds


@dataclass(slots=True)
class _State:
    over_since: float | None = None
    clear_since: float | None = None
    firing: bool = False
    severity: Severity = "warning"
    opened_at: float = 0.0
    last_emit: float = 0.0
    history: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=30))


class Conditions:
    """Feed it snapshots; it returns the changes to report."""

    def __init__(self, thresholds: Thresholds, renotify_s: float | None = None) -> None:
        self.t = thresholds
        self.renotify_s = renotify_s  # a condition still firing is reported again this often
        self._states: dict[tuple[str, str], _State] = {}

    def update(self, snap: Snapshot) -> list[ConditionChange]:
        """Evaluate one snapshot against every threshold."""
        t = self.t
        out: list[ConditionChange] = []
        avail = snap.mem_available_pct
        severity: Severity = "critical" if avail < t.mem_available_crit_pct else "warning"
        self._check(
            out,
            snap,
            "memory_low",
            "system",
            value=avail,
            threshold=t.mem_available_warn_pct,
            below=True,
            severity=severity,
            text=f"Memory available is {avail:.1f}% of {_mib(snap.mem_total_kb * 1024)}",
            level_bytes=(snap.mem_total_kb - snap.mem_available_kb) * 1024,
            limit_bytes=snap.mem_total_kb * 1024,
        )
        if snap.swap_total_kb:
            used = 100.0 * (snap.swap_total_kb - snap.swap_free_kb) / snap.swap_total_kb
            self._check(
                out,
                snap,
                "swap_low",
                "system",
                value=used,
                threshold=t.swap_used_warn_pct,
                below=False,
                severity="warning",
                text=f"Swap is {used:.1f}% used of {_mib(snap.swap_total_kb * 1024)}",
            )
        if snap.psi_full_avg10 is not None:
            psi = snap.psi_full_avg10
            self._check(
                out,
                snap,
                "memory_pressure",
                "system",
                value=psi,
                threshold=t.psi_full_avg10_warn,
                below=False,
                severity="warning",
                text=f"All tasks stalled on memory {psi:.1f}% of the last 10 s (PSI full)",
            )
        present = set()
        for cg in snap.cgroups:
            present.add(cg.path)
            pct = 100.0 * cg.usage_bytes / cg.limit_bytes
            self._check(
                out,
                snap,
                "cgroup_near_limit",
                cg.path,
                value=pct,
                threshold=t.cgroup_usage_warn_pct,
                below=False,
                severity="warning",
                text=(
                    f"Memory cgroup {cg.path} uses {_mib(cg.usage_bytes)} of its "
                    f"{_mib(cg.limit_bytes)} limit ({pct:.0f}%)"
                ),
                level_bytes=cg.usage_bytes,
                limit_bytes=cg.limit_bytes,
            )
        for (kind, subject), st in list(self._states.items()):
            if kind == "cgroup_near_limit" and subject not in present:
                if st.firing:
                    out.append(
                        ConditionChange(
                            kind,
                            subject,
                            "resolved",
                            st.severity,
                            0.0,
                            t.cgroup_usage_warn_pct,
                            st.opened_at,
                            snap.time,
                            f"Memory cgroup {subject} is gone",
                        )
                    )
                del self._states[(kind, subject)]
        return out

    def _check(
        self,
        out: list[ConditionChange],
        snap: Snapshot,
        kind: str,
        subject: str,
        *,
        value: float,
        threshold: float,
        below: bool,
        severity: Severity,
        text: str,
        level_bytes: int | None = None,
        limit_bytes: int | None = None,
    ) -> None:
        st = self._states.setdefault((kind, subject), _State())
        now = snap.time
        if level_bytes is not None:
            st.history.append((now, float(level_bytes)))
        hyst = self.t.hysteresis_pct
        over = value < threshold if below else value > threshold
        clear = value > threshold + hyst if below else value < threshold - hyst
        wait = self.t.min_duration_s
        if over:
            st.clear_since = None
            st.over_since = st.over_since if st.over_since is not None else now
            escalated = st.firing and severity == "critical" and st.severity == "warning"
            repeat = bool(
                st.firing
                and not escalated
                and self.renotify_s
                and now - st.last_emit >= self.renotify_s
            )
            if (not st.firing and now - st.over_since >= wait) or escalated or repeat:
                if not st.firing:
                    st.opened_at = now
                st.firing, st.severity, st.last_emit = True, severity, now
                out.append(
                    ConditionChange(
                        kind,
                        subject,
                        "firing",
                        severity,
                        value,
                        threshold,
                        st.opened_at,
                        now,
                        text,
                        _forecast(st.history, limit_bytes),
                        level_bytes,
                        limit_bytes,
                        repeat,
                    )
                )
            return
        st.over_since = None
        if st.firing and clear:
            st.clear_since = st.clear_since if st.clear_since is not None else now
            if now - st.clear_since >= wait:
                st.firing = False
                st.clear_since = None
                out.append(
                    ConditionChange(
                        kind,
                        subject,
                        "resolved",
                        st.severity,
                        value,
                        threshold,
                        st.opened_at,
                        now,
                        text,
                        None,
                        level_bytes,
                        limit_bytes,
                    )
                )
        elif not clear:
            st.clear_since = None


def _forecast(history: deque[tuple[float, float]], limit: int | None) -> float | None:
    """Seconds until `limit` at the current rate (least squares), if usage grows steadily."""
    if limit is None or len(history) < 3:
        return None
    xs = [t for t, _ in history]
    ys = [v for _, v in history]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    if slope <= 0:
        return None
    syy = sum((y - my) ** 2 for y in ys)
    r2 = (slope * slope * sxx / syy) if syy else 0.0
    if r2 < 0.8:  # not a steady trend: no forecast rather than a wild one
        return None
    left = limit - ys[-1]
    return max(left / slope, 0.0)


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n < (1 << 30) else f"{n / (1 << 30):.1f} GiB"
