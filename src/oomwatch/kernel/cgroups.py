"""Container identity from a cgroup path alone: runtime, container id, pod UID, QoS class.

Covers cgroup v1 and v2, the cgroupfs and systemd drivers, and the paths that
containerd, CRI-O, Docker, podman and LXC create, nested or not (kind nodes put
a whole kubelet tree under `/docker/<id>/`). Pure: no API call, no file access.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from oomwatch.model import Container

_HEX64 = r"[0-9a-f]{64}"
_UUID = r"[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}"

# systemd-driver scopes: (unit prefix, runtime)
_SCOPES: tuple[tuple[str, str], ...] = (
    ("cri-containerd-", "containerd"),
    ("crio-conmon-", "cri-o"),
    ("crio-", "cri-o"),
    ("docker-", "docker"),
    ("libpod-conmon-", "podman"),
    ("libpod-", "podman"),
)
_SCOPE_RE = re.compile(
    r"^(?P<prefix>cri-containerd-|crio-conmon-|crio-|docker-|libpod-conmon-|libpod-)"
    rf"(?P<id>{_HEX64})\.scope$"
)
# containerd's own notation for a systemd cgroup (`slice:prefix:id`), seen in some logs
_TRIPLE_RE = re.compile(
    rf"^(?P<slice>[^:/]*\.slice):(?P<prefix>cri-containerd|crio|docker):(?P<id>{_HEX64})$"
)
_TRIPLE_TAIL_RE = re.compile(rf"^(?P<prefix>cri-containerd|crio|docker):(?P<id>{_HEX64})$")
_POD_RE = re.compile(
    rf"^(?:kubepods(?:-(?:besteffort|burstable))?-)?pod(?P<uid>{_UUID})(?:\.slice)?$"
)
_HEX64_RE = re.compile(rf"^{_HEX64}$")
_LIBPOD_RE = re.compile(rf"^libpod-(?P<id>{_HEX64})$")
_RUNTIMES = dict(_SCOPES)
_LXC_RE = re.compile(r"^lxc(?:\.payload)?[./](?P<name>.+)$")


@dataclass(slots=True)
class _Found:
    """What the parts of a cgroup path read so far say."""

    runtime: str | None = None
    cid: str | None = None
    pod_uid: str | None = None
    qos: str | None = None
    unit: str | None = None
    in_kubepods: bool = False

    def kube(self, part: str) -> bool:
        """Take a Kubernetes part (kubepods, a QoS slice, a pod); False when it is none."""
        if part in ("kubepods", "kubepods.slice") or part.startswith("kubelet-kubepods"):
            # a kubelet tree nested in a container (kind): the outer id is the node's
            self.runtime = self.cid = self.unit = None
            self.in_kubepods = True
            self.qos = self.qos or "guaranteed"
            return True
        if self.in_kubepods and part in ("burstable", "kubepods-burstable.slice"):
            self.qos = "burstable"
            return True
        if self.in_kubepods and part in ("besteffort", "kubepods-besteffort.slice"):
            self.qos = "besteffort"
            return True
        pm = _POD_RE.match(part)
        if pm and (self.in_kubepods or part.startswith("kubepods")):
            self.in_kubepods = True
            self.pod_uid = pm.group("uid").replace("_", "-")
            if "-besteffort-" in part:
                self.qos = "besteffort"
            elif "-burstable-" in part:
                self.qos = "burstable"
            else:
                self.qos = self.qos or "guaranteed"
            return True
        return False

    def container(self, part: str, prev: str, first: bool) -> None:
        """Take a part that may name a container of some runtime."""
        if sm := _SCOPE_RE.match(part):
            self.runtime, self.cid, self.unit = _RUNTIMES[sm.group("prefix")], sm.group("id"), part
        elif tm := _TRIPLE_TAIL_RE.match(part):
            prefix = tm.group("prefix")
            self.runtime = {"cri-containerd": "containerd", "crio": "cri-o"}.get(prefix, prefix)
            self.cid = tm.group("id")
        elif pod := _LIBPOD_RE.match(part):  # podman's cgroupfs driver: libpod-<id>
            self.runtime, self.cid, self.unit = "podman", pod.group("id"), None
        elif _HEX64_RE.match(part):
            if prev == "docker":
                self.runtime, self.cid, self.unit = "docker", part, None
            elif prev == "libpod_parent" or prev.startswith("libpod-"):
                self.runtime, self.cid, self.unit = "podman", part, None
            elif self.pod_uid is not None:
                # cgroupfs driver: the path does not say which runtime made it
                self.runtime, self.cid, self.unit = None, part, None
        elif (lm := _LXC_RE.match(part)) and first:
            self.runtime, self.cid = "lxc", lm.group("name")


def container_from_cgroup(path: str | None) -> Container | None:
    """The container a cgroup path belongs to, or None when it names no container."""
    if not path:
        return None
    parts: list[str] = []
    for part in (p for p in path.split("/") if p):
        tm = _TRIPLE_RE.match(part)
        # containerd's `slice:prefix:id` names the pod slice and the container in one part
        parts.extend((tm.group("slice"), part[len(tm.group("slice")) + 1 :]) if tm else (part,))
    if parts[:1] == ["lxc"] and len(parts) > 1:
        return Container(
            runtime="lxc", id=parts[1], pod_uid=None, qos_class=None, systemd_unit=None
        )
    f = _Found()
    for i, part in enumerate(parts):
        if not f.kube(part):
            f.container(part, parts[i - 1] if i else "", i == 0)
    if f.cid is None and f.pod_uid is None:
        return None
    return Container(
        runtime=f.runtime, id=f.cid, pod_uid=f.pod_uid, qos_class=f.qos, systemd_unit=f.unit
    )


def systemd_unit_of(path: str | None) -> str | None:
    """The innermost systemd unit (`.service` or `.scope`) in a cgroup path, if any."""
    if not path:
        return None
    for part in reversed([p for p in path.split("/") if p]):
        if part.endswith((".service", ".scope")):
            return part
    return None
