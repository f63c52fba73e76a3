"""The real kernel OOM-kills a process in a small memory cgroup; parse and diagnose read it.

Root only (memory cgroups), skipped elsewhere with the reason. Each hog runs in its
own cgroup with a 32 MiB limit, which is removed afterwards even on failure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from oomwatch.drill.memcg import MIB, find_memory_controller, memory_cgroup, start_hog
from oomwatch.kernel.scan import LogScanner
from tests.kmsg_tail import KmsgTail

LIMIT = 32 * MIB


def kill_in_cgroup(name: str, comm: str) -> tuple[int, bytes]:
    """OOM-kill a hog named `comm` in cgroup `name`; its pid and the kmsg records around it."""
    tail = KmsgTail()
    try:
        with memory_cgroup(name, LIMIT) as cg, start_hog(cg, comm=comm) as hog:
            hog.go()
            assert hog.wait() == -9, "the kernel should have killed the hog"
        records = tail.read(until=f"Killed process {hog.pid} ".encode())
    finally:
        tail.close()
    assert not (Path("/sys/fs/cgroup/memory") / name).exists()
    return hog.pid, records


def test_real_kill_parses_from_kmsg(cgroup_name: str, tmp_path: Path) -> None:
    """The captured /dev/kmsg text gives the kill with pid, comm, cgroup and limit."""
    pid, records = kill_in_cgroup(cgroup_name, "oomwatch-hog")
    kills = [
        k
        for k in LogScanner().scan_lines(records.split(b"\n"))
        if (k.victim.pid, k.oom_memcg) == (pid, f"/{cgroup_name}")
    ]
    assert len(kills) == 1
    k = kills[0]
    ctl = find_memory_controller()
    assert ctl is not None
    assert k.victim.comm == "oomwatch-hog"
    assert k.victim.uid == 0
    assert k.oom_memcg == f"/{cgroup_name}"
    assert k.task_memcg == f"/{cgroup_name}"
    assert k.scope == "memcg"
    assert k.memcg is not None
    assert k.memcg.limit_kb == LIMIT // 1024
    assert k.trigger is not None
    assert k.trigger.pid == pid
    assert k.seq is not None
    assert pid in [t.pid for t in k.tasks]
    assert k.tasks_complete
    assert k.page_kb == 4

    saved = tmp_path / "kmsg.txt"
    saved.write_bytes(records)
    done = subprocess.run(
        [sys.executable, "-m", "oomwatch", "parse", "--format", "json", str(saved)],
        capture_output=True,
        check=True,
    )
    parsed = [json.loads(line) for line in done.stdout.splitlines()]
    mine = [r for r in parsed if (r["victim"]["pid"], r["oom_memcg"]) == (pid, f"/{cgroup_name}")]
    assert len(mine) == 1
    assert mine[0]["oom_memcg"] == f"/{cgroup_name}"
    assert mine[0]["memcg"]["limit_kb"] == 32768


def test_diagnose_reads_the_live_log(cgroup_name: str) -> None:
    """`oomwatch diagnose` on this machine finds and explains the kill that just happened."""
    pid, _ = kill_in_cgroup(cgroup_name, "oomwatch-diag")
    cmd = [sys.executable, "-m", "oomwatch", "diagnose", "--source", "kmsg"]
    done = subprocess.run([*cmd, "--json"], capture_output=True, check=True)
    mine = [
        r
        for r in map(json.loads, done.stdout.splitlines())
        if (r["victim"]["pid"], r["oom_memcg"]) == (pid, f"/{cgroup_name}")
    ]
    assert len(mine) == 1
    assert mine[0]["time"] is not None  # uptime turned into a wall time
    report = subprocess.run(
        cmd, capture_output=True, check=True, env={"COLUMNS": "300"}, text=True
    ).stdout
    assert f"oomwatch-diag (pid {pid}), user root (uid 0)" in report
    assert f"memory cgroup limit of /{cgroup_name}: 32.0 MiB used of 32.0 MiB" in report


@pytest.mark.fault
def test_hostile_process_name(cgroup_name: str) -> None:
    """A name with markup and a newline survives the real kernel path as plain text."""
    pid, records = kill_in_cgroup(cgroup_name, "<!chan\nnel>")
    kills = [
        k
        for k in LogScanner().scan_lines(records.split(b"\n"))
        if (k.victim.pid, k.oom_memcg) == (pid, f"/{cgroup_name}")
    ]
    assert len(kills) == 1
    assert kills[0].victim.comm == "<!chan\nnel>"
    assert kills[0].trigger is not None
    assert kills[0].trigger.pid == pid  # the CPU: banner with the name was not split either
    assert kills[0].victim.anon_rss_kb is not None


@pytest.mark.usefixtures("journald")
def test_diagnose_through_a_real_journald(cgroup_name: str) -> None:
    """journald (reading the kernel log itself) gives the same kill through journalctl."""
    import time

    from oomwatch.sources.oneshot import read_local_log

    pid, _ = kill_in_cgroup(cgroup_name, "oomwatch-jrnl")
    deadline = time.monotonic() + 10
    while True:
        log = read_local_log("journald")
        mine = [k for k in log.kills if (k.victim.pid, k.oom_memcg) == (pid, f"/{cgroup_name}")]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(mine) == 1
    assert mine[0].oom_memcg == f"/{cgroup_name}"
    assert mine[0].host is not None
    assert mine[0].time is not None


JOURNAL_FORMATS = [
    "short",
    "short-full",
    "short-iso",
    "short-iso-precise",
    "short-precise",
    "short-monotonic",
    "short-unix",
    "short-delta",
    "with-unit",
    "cat",
    "export",
    "json",
    "verbose",
]


@pytest.mark.usefixtures("journald")
def test_every_journalctl_output_of_a_real_kill(cgroup_name: str, tmp_path: Path) -> None:
    """A real kill, read back through a real journald in each `journalctl -o` format."""
    import time

    # only this test's part of the journal: a long-lived machine's is hundreds of MB
    since = f"--since=@{int(time.time()) - 2}"
    pid, _ = kill_in_cgroup(cgroup_name, "oomwatch-jfmt")
    deadline = time.monotonic() + 10
    want = f"Killed process {pid} ".encode()
    while True:
        text = subprocess.run(
            ["journalctl", "-k", since, "-o", "short", "--no-pager", "-q"],
            capture_output=True,
            check=False,
        ).stdout
        if want in text or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert want in text, "journald kept the kill"
    for fmt in JOURNAL_FORMATS:
        out = tmp_path / f"journal.{fmt}"
        out.write_bytes(
            subprocess.run(
                ["journalctl", "-k", since, "-o", fmt, "--no-pager", "-q"],
                capture_output=True,
                check=True,
            ).stdout
        )
        for fast in (False, True):
            # the year of a syslog-style stamp comes from the file's time, as parse does
            scanner = LogScanner(reference=datetime.now())
            if fast:
                with out.open("rb") as f:
                    found = list(scanner.scan_stream(f))
            else:
                found = list(scanner.scan_lines(out.read_bytes().split(b"\n")))
            mine = [k for k in found if (k.victim.pid, k.oom_memcg) == (pid, f"/{cgroup_name}")]
            assert len(mine) == 1, (fmt, fast)
            k = mine[0]
            assert (k.victim.comm, k.oom_memcg) == ("oomwatch-jfmt", f"/{cgroup_name}"), fmt
            assert k.memcg is not None, fmt
            assert k.memcg.limit_kb == LIMIT // 1024, fmt
            if fmt != "cat":  # -o cat prints the message alone
                assert k.time is not None or k.uptime_s is not None, fmt


@pytest.mark.usefixtures("journald")
@pytest.mark.fault
def test_kills_forged_through_journald_are_not_believed(cgroup_name: str, tmp_path: Path) -> None:
    """Text written to /dev/kmsg or sent by `logger -t kernel` is no kernel kill; a real one is."""
    import shutil
    import time

    from oomwatch.sources.oneshot import read_local_log

    if shutil.which("logger") is None:
        pytest.skip("needs util-linux logger")
    forged = (
        "Out of memory: Killed process 1 ({}) total-vm:1000kB, anon-rss:500kB, file-rss:0kB, "
        "shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0"
    )
    with open("/dev/kmsg", "w") as kmsg:  # as any process with write access to it can
        kmsg.write(forged.format("FAKEKMSG") + "\n")
        kmsg.write("<0>" + forged.format("FAKEPRI0") + "\n")  # facility 0 is refused
    dev_log = "/run/systemd/journal/dev-log"
    subprocess.run(
        ["logger", "-u", dev_log, "-t", "kernel", forged.format("FAKELOGGER")], check=True
    )
    # the native protocol lets a sender set any field but the trusted (_) ones
    native = f"MESSAGE={forged.format('FAKENATIVE')}\nSYSLOG_IDENTIFIER=kernel\nSYSLOG_FACILITY=0\n"
    subprocess.run(["logger", "--journald"], input=native.encode(), check=True)
    pid, _ = kill_in_cgroup(cgroup_name, "oomwatch-real")
    deadline = time.monotonic() + 10
    while True:
        log = read_local_log("journald")
        if (
            any((k.victim.pid, k.oom_memcg) == (pid, f"/{cgroup_name}") for k in log.kills)
            or time.monotonic() > deadline
        ):
            break
        time.sleep(0.2)
    assert [k.victim.pid for k in log.kills if k.oom_memcg == f"/{cgroup_name}"] == [pid]
    assert not [k for k in log.kills if (k.victim.comm or "").startswith("FAKE")]
    # the whole journal, every transport, through `parse`: still only the real kill
    export = tmp_path / "journal.json"
    with export.open("wb") as out:
        subprocess.run(
            ["journalctl", "-o", "json", "--no-pager", "-n", "5000"], stdout=out, check=True
        )
    assert b"FAKELOGGER" in export.read_bytes(), "the forgeries are in the journal"
    assert b"FAKEKMSG" in export.read_bytes()
    assert b"FAKENATIVE" in export.read_bytes()
    done = subprocess.run(
        [sys.executable, "-m", "oomwatch", "parse", "--format", "json", str(export)],
        capture_output=True,
        text=True,
        check=False,
    )
    comms = [json.loads(line)["victim"]["comm"] for line in done.stdout.splitlines()]
    assert "oomwatch-real" in comms
    assert not [c for c in comms if c.startswith("FAKE")]
