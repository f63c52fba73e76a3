"""The chart's own pod in a real container runtime: the image built, the pod played, real kills.

The image is built from the unchanged Dockerfile (packaging/build-image.sh: buildah on
a local Debian base). The DaemonSet's pod template, rendered by the real Helm engine,
becomes a Pod for `podman kube play` by code, with what a kubelet would do that podman
4.3 cannot: `spec.nodeName` filled in, and no port mappings on the host network.
Root only, with podman, buildah, runc and debootstrap; skipped elsewhere, saying why.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from oomwatch.drill.memcg import MIB, memory_cgroup, start_hog
from oomwatch.kernel.cgroups import container_from_cgroup
from oomwatch.sampling.sampler import _memory_cgroup
from tests.agentproc import free_port, settled
from tests.servers import Received, Recorder

ROOT = Path(__file__).parents[2]
IMAGE = "localhost/oomwatch:pod-test"
TOOLS = ("podman", "buildah", "runc", "debootstrap")
MISSING = [t for t in TOOLS if shutil.which(t) is None]
pytestmark = [
    pytest.mark.skipif(
        os.geteuid() != 0, reason="a container runtime and memory cgroups need root"
    ),
    pytest.mark.skipif(bool(MISSING), reason=f"not installed: {', '.join(MISSING)}"),
    pytest.mark.slow,
]
# podman 4.3 on this kind of host: crun refuses a hybrid cgroup layout, and without
# CAP_SYS_RESOURCE the default rlimits cannot be raised, only lowered
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
runtime = "runc"
"""

helm = pytest.importorskip("helm_python", reason="helm-python-sdk is not installed")


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """The agent image, built once for these tests and removed after."""
    done = subprocess.run(
        [str(ROOT / "packaging" / "build-image.sh"), IMAGE],
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    print(done.stdout.strip())  # build time and size, for the record
    yield IMAGE
    subprocess.run(["podman", "rmi", "-f", IMAGE], capture_output=True, check=False)


def pod_of(values: dict[str, Any]) -> list[dict[str, Any]]:
    """The chart rendered with `values`: its ConfigMap and its DaemonSet's pod, as a Pod."""
    with helm.Chart.load(str(ROOT / "helm" / "oomwatch")) as chart:
        manifests = chart.render(values, name="oomwatch", namespace="monitoring")
    objects = [
        d
        for p, t in manifests.items()
        if not p.endswith(".txt")
        for d in yaml.safe_load_all(t)
        if d
    ]
    (ds,) = [o for o in objects if o["kind"] == "DaemonSet"]
    spec = copy.deepcopy(ds["spec"]["template"]["spec"])
    for c in spec["containers"]:
        seen: dict[str, str] = {}
        for e in c["env"]:
            if e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName":
                del e["valueFrom"]
                e["value"] = socket.gethostname()  # what the kubelet puts there
            if "value" in e:  # and the kubelet expands $(NAME) of the variables before
                for k, v in seen.items():
                    e["value"] = e["value"].replace(f"$({k})", v)
                seen[e["name"]] = e["value"]
        if spec.get("hostNetwork"):
            port = c.pop("ports")[0]["containerPort"]  # the host's port: nothing to map
            for probe in ("livenessProbe", "readinessProbe"):
                c[probe]["httpGet"]["port"] = port
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"oomwatch-{uuid.uuid4().hex[:6]}",
            "labels": ds["spec"]["template"]["metadata"]["labels"],
        },
        "spec": spec,
    }
    return [*(o for o in objects if o["kind"] == "ConfigMap"), pod]


def podman(*args: str, conf: Path) -> subprocess.CompletedProcess[str]:
    """podman with this host's containers.conf overrides."""
    return subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "CONTAINERS_CONF": str(conf)},
        timeout=120,
    )


def kill_in_host_cgroup(comm: str) -> tuple[int, float]:
    """A real OOM kill on the host in a fresh 32 MiB cgroup: its pid and when it died."""
    with (
        memory_cgroup(f"oomwatch-pod-{uuid.uuid4().hex[:8]}", 32 * MIB) as cg,
        start_hog(cg, comm=comm) as hog,
    ):
        hog.go()
        assert hog.wait() == -9
        return hog.pid, time.monotonic()


def of(pid: int) -> Any:
    """Matches a webhook delivery of the kill of `pid`."""

    def match(r: Received) -> bool:
        inc = r.json().get("incident", {})
        return bool(inc.get("kind") == "oom_kill" and (inc.get("victim") or {}).get("pid") == pid)

    return match


@pytest.mark.parametrize("source", ["kmsg", "journald", "file"])
def test_the_charts_pod_reports_real_kills(
    image: str, source: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Ready, healthy; each kill once with pid, comm, cgroup; a restart repeats and loses none."""
    if source == "journald":
        request.getfixturevalue("journald")  # a real journald on the host (tests/conftest.py)
    hook = Recorder().start()
    conf = tmp_path / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    port = free_port()
    repo, tag = image.rsplit(":", 1)
    values: dict[str, Any] = {
        "source": source,
        "image": {"repository": repo, "tag": tag, "pullPolicy": "Never"},
        "hostNetwork": True,
        "listenPort": port,
        "stateDir": str(tmp_path / "state"),
        "kubernetesEvents": False,
        "env": {"OOMWATCH_WEBHOOK_URL": f"{hook.url}/hook", "OOMWATCH_KUBERNETES": "off"},
    }
    kern_log = tmp_path / "log" / "kern.log"
    if source == "file":
        kern_log.parent.mkdir()
        kern_log.write_text("")
        values["logFile"] = str(kern_log)
    manifest = tmp_path / "pod.yaml"
    docs = pod_of(values)
    manifest.write_text(yaml.safe_dump_all(docs))
    name = docs[-1]["metadata"]["name"]
    try:
        played = podman("kube", "play", str(manifest), conf=conf)
        assert played.returncode == 0, played.stderr
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, podman(
                "logs", f"{name}-oomwatch", conf=conf
            ).stderr[-2000:]
            time.sleep(0.2)
        assert httpx.get(f"{base}/-/healthy", timeout=5).status_code == 200
        inspect = json.loads(podman("inspect", f"{name}-oomwatch", conf=conf).stdout)[0]
        assert inspect["HostConfig"]["Privileged"] is (source == "kmsg")
        assert inspect["HostConfig"]["ReadonlyRootfs"] is True
        # the container's real cgroup, as its processes' kills will name it
        with open(f"/proc/{inspect['State']['Pid']}/cgroup", "rb") as f:
            path = _memory_cgroup(f.read())
        found = container_from_cgroup(path)
        assert found is not None, path
        assert (found.runtime, found.id) == ("podman", inspect["Id"]), path
        print(f"{source}: the container's memory cgroup {path}: runtime {found.runtime}")
        user = podman("exec", f"{name}-oomwatch", "id", "-u", conf=conf).stdout.strip()
        assert user == "0"  # the chart's runAsUser
        pids = []
        for i in range(3):
            pid, shown = kill_in_host_cgroup(f"oomwatch-pod{i}")
            pids.append(pid)
            if source == "file":
                shown = _copy_kernel_report(pid, kern_log)
            # journald's first start reads the whole journal first (this machine's
            # holds every test run's kills): the first kill may wait for that
            first_wait = 120 if source == "journald" and i == 0 else 10
            (got,) = hook.wait_for(of(pid), timeout_s=first_wait)
            inc = got.json()["incident"]
            assert inc["victim"]["comm"] == f"oomwatch-pod{i}"
            assert inc["task_memcg"].startswith("/oomwatch-pod-")
            assert inc["host"] == socket.gethostname()
            # from the kernel's stamp of the kill (CLOCK_MONOTONIC, as time.monotonic), or,
            # for a file, from when its lines were written there
            latency = got.at - (inc["uptime_s"] if source == "kmsg" else shown)
            print(f"{source}: kill {i} -> webhook in {latency * 1000:.0f} ms")
            if source != "journald" or i > 0:
                assert latency < 1.0
        stopped = podman("pod", "stop", name, conf=conf)
        assert stopped.returncode == 0, stopped.stderr
        pid, _ = kill_in_host_cgroup("oomwatch-podoff")
        if source == "file":
            _copy_kernel_report(pid, kern_log)
        started = podman("pod", "start", name, conf=conf)
        assert started.returncode == 0, started.stderr
        hook.wait_for(of(pid), timeout_s=30)
        assert any(of(pid)(r) for r in hook.received), "the kill made while it was stopped"
        settled(tmp_path / "state" / "oomwatch.db")
        for p in [*pids, pid]:
            assert sum(of(p)(r) for r in hook.received) == 1, p
    finally:
        podman("pod", "rm", "-f", name, conf=conf)
        hook.stop()


def _copy_kernel_report(pid: int, log: Path) -> float:
    """Append the kernel's report of `pid` to `log` as rsyslog would (from `dmesg`); when."""
    out = subprocess.run(["dmesg", "--raw"], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    end = max(i for i, ln in enumerate(lines) if f"Killed process {pid} " in ln)
    start = max(i for i, ln in enumerate(lines[:end]) if "invoked oom-killer" in ln)
    stamp = time.strftime("%b %e %H:%M:%S")
    with log.open("a") as f:
        for ln in lines[start : end + 1]:
            text = ln.split(">", 1)[1] if ln.startswith("<") else ln
            f.write(f"{stamp} node1 kernel: {text}\n")
    return time.monotonic()
