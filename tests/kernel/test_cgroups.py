"""Container identity from cgroup paths of every runtime, driver and cgroup version."""

from __future__ import annotations

import pytest

from oomwatch.kernel.cgroups import container_from_cgroup, systemd_unit_of
from oomwatch.model import Container

H = "25a38b5b8d556d7983d975577f5ac75ebbcfb4b269e6deaa0a0440c1ffc969ca"
UID = "5931aa75-4603-4e65-b552-7c71cf55cfb5"
UID_ = UID.replace("-", "_")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"/docker/{H}", Container("docker", H, None, None, None)),
        (
            f"/system.slice/docker-{H}.scope",
            Container("docker", H, None, None, f"docker-{H}.scope"),
        ),
        (f"/kubepods/burstable/pod{UID}/{H}", Container(None, H, UID, "burstable", None)),
        (f"/kubepods/besteffort/pod{UID}/{H}", Container(None, H, UID, "besteffort", None)),
        (f"/kubepods/pod{UID}/{H}", Container(None, H, UID, "guaranteed", None)),
        (
            f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/"
            f"cri-containerd-{H}.scope",
            Container("containerd", H, UID, "burstable", f"cri-containerd-{H}.scope"),
        ),
        (
            f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/"
            f"crio-{H}.scope",
            Container("cri-o", H, UID, "besteffort", f"crio-{H}.scope"),
        ),
        (
            f"/kubepods.slice/kubepods-pod{UID_}.slice/docker-{H}.scope",
            Container("docker", H, UID, "guaranteed", f"docker-{H}.scope"),
        ),
        (
            f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice",
            Container(None, None, UID, "burstable", None),
        ),
        (
            f"/machine.slice/libpod-{H}.scope",
            Container("podman", H, None, None, f"libpod-{H}.scope"),
        ),
        (
            f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{H}.scope/container",
            Container("podman", H, None, None, f"libpod-{H}.scope"),
        ),
        (f"/libpod_parent/libpod-{H}/{H}", Container("podman", H, None, None, None)),
        (
            f"/docker/{'a' * 64}/kubepods/burstable/pod{UID}/{H}",
            Container(None, H, UID, "burstable", None),
        ),
        (
            f"/kubepods.slice/kubepods-burstable.slice:cri-containerd:{H}",
            Container("containerd", H, None, "burstable", None),
        ),
        ("/lxc/web1", Container("lxc", "web1", None, None, None)),
        ("/lxc.payload.web1", Container("lxc", "web1", None, None, None)),
    ],
)
def test_container_paths(path: str, expected: Container) -> None:
    """Runtime, id, canonical dashed pod UID, QoS class and scope unit come from the path."""
    assert container_from_cgroup(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        None,
        "",
        "/",
        "/mem2",
        "/user.slice/user-1000.slice/user@1000.service/app.slice/a.scope",
        "/system.slice/nginx.service",
        f"/pod{UID}",
        "/docker",
        "/kubepods/burstable",
    ],
)
def test_paths_without_a_container(path: str | None) -> None:
    """Plain cgroups, services and look-alikes outside kubepods name no container."""
    assert container_from_cgroup(path) is None


def test_systemd_unit() -> None:
    """The innermost .service or .scope unit."""
    assert systemd_unit_of("/system.slice/nginx.service") == "nginx.service"
    assert systemd_unit_of(f"/system.slice/docker-{H}.scope") == f"docker-{H}.scope"
    assert systemd_unit_of("/mem2") is None


def test_podman_cgroupfs_container() -> None:
    """A real podman container under the cgroupfs driver: /libpod_parent/libpod-<id>."""
    cid = "0d5f2c7a" * 8
    c = container_from_cgroup(f"/libpod_parent/libpod-{cid}")
    assert c is not None
    assert (c.runtime, c.id, c.pod_uid) == ("podman", cid, None)
