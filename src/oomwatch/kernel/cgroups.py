"""Container identity from a cgroup path alone: runtime, container id, pod UID, QoS class.

Covers cgroup v1 and v2, the cgroupfs and systemd drivers, and the paths that
containerd, CRI-O, Docker, podman and LXC create, nested or not (kind nodes put
a whole kubelet tree under `/docker/<id>/`). Pure: no API call, no file access.
"""

from __future__ import annotations

import re

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
_LXC_RE = re.compile(r"^lxc(?:\.payload)?[./](?P<name>.+)$")


def container_from_cgroup(path: str | None) -> Container | None:
    """The container a cgroup path belongs to, or None when it names no container."""
    if not path:
        return None
    parts = [p for p in path.split("/") if p]
    runtime: str | None = None
    cid: str | None = None
    pod_uid: str | None = None
    qos: str | None = None
    unit: str | None = None
    in_kubepods = False
    expanded: list[str] = []
    for part in parts:
        tm = _TRIPLE_RE.match(part)
        # containerd's `slice:prefix:id` names the pod slice and the container in one part
        expanded.extend((tm.group("slice"), part[len(tm.group("slice")) + 1 :]) if tm else (part,))
    parts = expanded
    for i, part in enumerate(parts):
        if part in ("kubepods", "kubepods.slice") or part.startswith("kubelet-kubepods"):
            # a kubelet tree nested in a container (kind): the outer id is the node's
            runtime = cid = unit = None
            in_kubepods = True
            qos = qos or "guaranteed"
            continue
        if part == "lxc" and i == 0 and len(parts) > 1:
            runtime, cid = "lxc", parts[1]
            break
        if in_kubepods and part in ("burstable", "kubepods-burstable.slice"):
            qos = "burstable"
            continue
        if in_kubepods and part in ("besteffort", "kubepods-besteffort.slice"):
            qos = "besteffort"
            continue
        pm = _POD_RE.match(part)
        if pm and (in_kubepods or part.startswith("kubepods")):
            in_kubepods = True
            pod_uid = pm.group("uid").replace("_", "-")
            if "-besteffort-" in part:
                qos = "besteffort"
            elif "-burstable-" in part:
                qos = "burstable"
            else:
                qos = qos or "guaranteed"
            continue
        sm = _SCOPE_RE.match(part)
        if sm:
            runtime = dict(_SCOPES)[sm.group("prefix")]
            cid = sm.group("id")
            unit = part
            continue
        tm = _TRIPLE_TAIL_RE.match(part)
        if tm:
            runtime = {"cri-containerd": "containerd", "crio": "cri-o"}.get(
                tm.group("prefix"), tm.group("prefix")
            )
            cid = tm.group("id")
            continue
        if _HEX64_RE.match(part):
            prev = parts[i - 1] if i else ""
            if prev == "docker":
                runtime, cid, unit = "docker", part, None
            elif prev == "libpod_parent" or prev.startswith("libpod-"):
                runtime, cid, unit = "podman", part, None
            elif pod_uid is not None:
                # cgroupfs driver: the path does not say which runtime made it
                runtime, cid, unit = None, part, None
            continue
        lm = _LXC_RE.match(part)
        if lm and i == 0:
            runtime, cid = "lxc", lm.group("name")
            continue
    if cid is None and pod_uid is None:
        return None
    return Container(runtime=runtime, id=cid, pod_uid=pod_uid, qos_class=qos, systemd_unit=unit)


def systemd_unit_of(path: str | None) -> str | None:
    """The innermost systemd unit (`.service` or `.scope`) in a cgroup path, if any."""
    if not path:
        return None
    for part in reversed([p for p in path.split("/") if p]):
        if part.endswith((".service", ".scope")):
            return part
    return None
