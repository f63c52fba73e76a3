"""Memory conditions: thresholds with a minimum duration and hysteresis, and a forecast.

A condition opens when its value has been past the threshold for `min_duration_s`,
and resolves when it has been back past the threshold plus the hysteresis for as
long. While it is open, a steady trend gives the time left before the limit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from oomwatch.model import ConditionChange, Severity, Snapshot, Status
from oomwatch.settings import Thresholds


@dataclass(slots=True)
class _State:
    over_since: float | None = None
    clear_since: float | None = None
    firing: bool = False
    severity: Severity = "warning"
    opened_at: float = 0.0
    last_emit: float = 0.0
    threshold: float = 0.0
    history: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=30))


@dataclass(frozen=True, slots=True)
class Reading:
    """One subject's value in a snapshot, with the words that describe it."""

    subject: str
    value: float
    text: str
    level_bytes: int | None = None
    limit_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class ConditionSpec:
    """One kind of condition: what it reads from a snapshot, its threshold, its direction.

    `read` gets the snapshot and the one before it (None at the first), so a rate is
    one entry too. `critical` is a second threshold past which the severity is critical.
    """

    kind: str
    read: Callable[[Snapshot, Snapshot | None], Iterable[Reading]]
    threshold: Callable[[Thresholds], float]
    below: bool = False  # fires when the value falls under the threshold
    critical: Callable[[Thresholds], float] | None = None


def _memory(s: Snapshot, _: Snapshot | None) -> Iterable[Reading]:
    avail = s.mem_available_pct
    used = (s.mem_total_kb - s.mem_available_kb) * 1024
    text = f"Memory available is {avail:.1f}% of {_mib(s.mem_total_kb * 1024)}"
    yield Reading("system", avail, text, used, s.mem_total_kb * 1024)


def _swap(s: Snapshot, _: Snapshot | None) -> Iterable[Reading]:
    if s.swap_total_kb:
        used = 100.0 * (s.swap_total_kb - s.swap_free_kb) / s.swap_total_kb
        yield Reading("system", used, f"Swap is {used:.1f}% used of {_mib(s.swap_total_kb * 1024)}")


def _pressure(s: Snapshot, _: Snapshot | None) -> Iterable[Reading]:
    if s.psi_full_avg10 is not None:
        psi = s.psi_full_avg10
        text = f"All tasks stalled on memory {psi:.1f}% of the last 10 s (PSI full)"
        yield Reading("system", psi, text)


def _cgroups(s: Snapshot, _: Snapshot | None) -> Iterable[Reading]:
    for cg in s.cgroups:
        pct = 100.0 * cg.usage_bytes / cg.limit_bytes
        text = (
            f"Memory cgroup {cg.path} uses {_mib(cg.usage_bytes)} of its "
            f"{_mib(cg.limit_bytes)} limit ({pct:.0f}%)"
        )
        yield Reading(cg.path, pct, text, cg.usage_bytes, cg.limit_bytes)


SPECS: tuple[ConditionSpec, ...] = (
    ConditionSpec(
        "memory_low",
        _memory,
        lambda t: t.mem_available_warn_pct,
        below=True,
        critical=lambda t: t.mem_available_crit_pct,
    ),
    ConditionSpec("swap_low", _swap, lambda t: t.swap_used_warn_pct),
    ConditionSpec("memory_pressure", _pressure, lambda t: t.psi_full_avg10_warn),
    ConditionSpec("cgroup_near_limit", _cgroups, lambda t: t.cgroup_usage_warn_pct),
)


class Conditions:
    """Feed it snapshots; it returns the changes to report."""

    def __init__(
        self,
        thresholds: Thresholds,
        renotify_s: float | None = None,
        specs: tuple[ConditionSpec, ...] = SPECS,
    ) -> None:
        self.t = thresholds
        self.renotify_s = renotify_s  # a condition still firing is reported again this often
        self.specs = specs
        self._states: dict[tuple[str, str], _State] = {}
        self._prev: Snapshot | None = None

    def update(self, snap: Snapshot) -> list[ConditionChange]:
        """Evaluate one snapshot against every spec; subjects gone since resolve."""
        out: list[ConditionChange] = []
        present: set[tuple[str, str]] = set()
        for spec in self.specs:
            threshold = spec.threshold(self.t)
            for r in spec.read(snap, self._prev):
                present.add((spec.kind, r.subject))
                crit = spec.critical(self.t) if spec.critical else None
                past_crit = crit is not None and (r.value < crit if spec.below else r.value > crit)
                self._check(
                    out,
                    snap,
                    spec.kind,
                    r,
                    threshold=threshold,
                    below=spec.below,
                    critical=past_crit,
                )
        self._prev = snap
        for (kind, subject), st in list(self._states.items()):
            if (kind, subject) in present:
                continue
            if st.firing:
                out.append(
                    ConditionChange(
                        kind,
                        subject,
                        "resolved",
                        st.severity,
                        0.0,
                        st.threshold,
                        st.opened_at,
                        snap.time,
                        f"Memory cgroup {subject} is gone"
                        if subject.startswith("/")
                        else f"{kind} ended",
                    )
                )
            del self._states[(kind, subject)]
        return out

    def _check(
        self,
        out: list[ConditionChange],
        snap: Snapshot,
        kind: str,
        r: Reading,
        *,
        threshold: float,
        below: bool,
        critical: bool,
    ) -> None:
        st = self._states.setdefault((kind, r.subject), _State())
        st.threshold = threshold
        now = snap.time
        if r.level_bytes is not None:
            st.history.append((now, float(r.level_bytes)))
        hyst = self.t.hysteresis_pct
        over = r.value < threshold if below else r.value > threshold
        clear = r.value > threshold + hyst if below else r.value < threshold - hyst
        if over:
            severity: Severity = "critical" if critical else "warning"
            self._while_over(out, st, kind, r, now=now, severity=severity)
            return
        st.over_since = None
        if st.firing and clear:
            st.clear_since = st.clear_since if st.clear_since is not None else now
            if now - st.clear_since >= self.t.min_duration_s:
                st.firing = False
                st.clear_since = None
                out.append(_change(kind, r, "resolved", st, now, forecast=None))
        elif not clear:
            st.clear_since = None

    def _while_over(
        self,
        out: list[ConditionChange],
        st: _State,
        kind: str,
        r: Reading,
        *,
        now: float,
        severity: Severity,
    ) -> None:
        """Past the threshold: fire after the minimum duration, on escalation, or to remind."""
        st.clear_since = None
        st.over_since = st.over_since if st.over_since is not None else now
        escalated = st.firing and severity == "critical" and st.severity == "warning"
        repeat = bool(
            st.firing
            and not escalated
            and self.renotify_s
            and now - st.last_emit >= self.renotify_s
        )
        due = not st.firing and now - st.over_since >= self.t.min_duration_s
        if not (due or escalated or repeat):
            return
        if not st.firing:
            st.opened_at = now
        st.firing, st.severity, st.last_emit = True, severity, now
        forecast = _forecast(st.history, r.limit_bytes)
        out.append(_change(kind, r, "firing", st, now, forecast=forecast, repeat=repeat))


def _change(
    kind: str,
    r: Reading,
    status: Status,
    st: _State,
    now: float,
    *,
    forecast: float | None,
    repeat: bool = False,
) -> ConditionChange:
    return ConditionChange(
        kind,
        r.subject,
        status,
        st.severity,
        r.value,
        st.threshold,
        st.opened_at,
        now,
        r.text,
        forecast,
        r.level_bytes,
        r.limit_bytes,
        repeat,
    )


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
