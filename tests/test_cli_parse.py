"""`oomwatch parse`: files, stdin, gzip, JSON Lines and text, and bad input handled plainly."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from oomwatch.cli import main
from tests.conftest import CORPUS

CASE = CORPUS / "013-aks-ubuntu2204-cgv2-containerd-syslog.log"


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI in-process; exit code, stdout, stderr."""
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """--format json prints one JSON object per kill with the documented names."""
    code, out, err = run(["parse", "--format", "json", str(CASE)], capsys)
    assert code == 0
    # the excerpt ends inside the next report: that kill is not in the file, and it is said
    assert err.splitlines() == [
        f"oomwatch: {CASE}: 1 line tells of an OOM kill that gave no record; kills may be missing:",
        "  line 90 (report ends before its kill line): stress-ng-vm invoked oom-killer: "
        "gfp_mask=0x1100cca(GFP_HIGHUSER_MOVABLE), order=0, oom_score_adj=1000",
    ]
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 1
    r = records[0]
    for name in (
        "kind",
        "killer",
        "host",
        "time",
        "uptime_s",
        "constraint",
        "oom_memcg",
        "task_memcg",
        "container",
        "victim",
        "trigger",
        "memcg",
        "tasks",
        "top_consumers",
    ):
        assert name in r
    assert r["kind"] == "oom_kill"
    assert r["host"] == "aks-nodepool1-24207654-vmss000001"
    assert r["time"].endswith("10-12T19:00:20")
    assert r["uptime_s"] == pytest.approx(8523.347333)
    assert r["container"] == {
        "runtime": "containerd",
        "id": "25a38b5b8d556d7983d975577f5ac75ebbcfb4b269e6deaa0a0440c1ffc969ca",
        "pod_uid": "5931aa75-4603-4e65-b552-7c71cf55cfb5",
        "qos_class": "burstable",
        "systemd_unit": "cri-containerd-25a38b5b8d556d7983d975577f5ac75ebbcfb4b269e6deaa0a0440c1"
        "ffc969ca.scope",
    }
    assert set(r["tasks"][0]) == {
        "pid",
        "uid",
        "tgid",
        "total_vm_pages",
        "rss_pages",
        "rss_anon_pages",
        "rss_file_pages",
        "rss_shmem_pages",
        "pgtables_bytes",
        "nr_ptes",
        "swapents",
        "oom_score_adj",
        "name",
    }
    assert r["top_consumers"][0]["rss_kb"] == 23376 * 4


def test_unknown_is_null_not_zero(capsys: pytest.CaptureFixture[str]) -> None:
    """What the log does not print is null: never 0 and never an empty string."""
    code, out, _ = run(
        ["parse", "--format", "json", str(CORPUS / "016-sapcc-kmsg-summary-only.log")], capsys
    )
    assert code == 0
    r = json.loads(out.splitlines()[0])
    assert r["trigger"] is None
    assert r["memcg"] is None
    assert r["victim"]["total_vm_kb"] is None
    assert r["victim"]["oom_score_adj"] is None
    assert r["host"] is None
    assert r["time"] is None


def test_text_lines_for_every_file(capsys: pytest.CaptureFixture[str]) -> None:
    """The default text format prints one readable line per kill, across several files."""
    files = [str(CORPUS / "004-gentoo48-docker-two-kills.log"), str(CASE)]
    code, out, _ = run(["parse", *files], capsys)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 3
    assert "gunpowder-memho (pid 1381, uid 0)" in lines[0]
    assert "memcg /docker/2e088fe" in lines[0]
    assert "containerd container 25a38b5b8d55 of pod 5931aa75" in lines[2]


def test_gzip_and_stdin(tmp_path: Path) -> None:
    """A .gz file and standard input (`-` or nothing) parse like the plain file."""
    gz = tmp_path / "kern.log.gz"
    gz.write_bytes(gzip.compress(CASE.read_bytes()))
    cmd = [sys.executable, "-m", "oomwatch", "parse", "--format", "json"]
    by_file = subprocess.run([*cmd, str(gz)], capture_output=True, check=True)
    by_stdin = subprocess.run(cmd, input=CASE.read_bytes(), capture_output=True, check=True)
    by_dash = subprocess.run([*cmd, "-"], input=gz.read_bytes(), capture_output=True, check=True)
    pids = [json.loads(o.stdout)["victim"]["pid"] for o in (by_file, by_stdin, by_dash)]
    assert pids == [183960, 183960, 183960]


def test_unreadable_files_exit_2_and_name_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing file, a directory and a corrupt .gz each give one clear line and exit 2."""
    bad_gz = tmp_path / "broken.gz"
    bad_gz.write_bytes(b"\x1f\x8b\x08\x00garbage-not-deflate")
    code, out, err = run(
        ["parse", str(tmp_path / "missing.log"), str(tmp_path), str(bad_gz), str(CASE)], capsys
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert (
        lines[0] == f"oomwatch: cannot read {tmp_path / 'missing.log'}: No such file or directory"
    )
    assert lines[1] == f"oomwatch: cannot read {tmp_path}: Is a directory"
    assert lines[2].startswith(f"oomwatch: cannot read {bad_gz}: ")
    assert "Traceback" not in err
    assert "stress-ng-vm" in out  # the good file is still parsed


def test_binary_garbage_gives_no_records(tmp_path: Path) -> None:
    """Random bytes give no record, no traceback and exit 0."""
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 4000 + b"\x00" * 100000)
    done = subprocess.run(
        [sys.executable, "-m", "oomwatch", "parse", "--format", "json", str(junk)],
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout == b""
    assert b"Traceback" not in done.stderr


def test_malformed_lines_are_reported_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unreadable OOM lines are counted on stderr with where they are; the kill still comes out."""
    log = tmp_path / "kern.log"
    log.write_text(
        "[ 1.0] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),task=x,pid=oops\n"
        "[ 1.1] Memory cgroup out of memory: Killed process 42 (x) total-vm:1kB, anon-rss:1kB, "
        "file-rss:1kB, shmem-rss:0kB\n"
    )
    code, out, err = run(["parse", str(log)], capsys)
    assert code == 0
    assert "x (pid 42)" in out
    assert f"oomwatch: {log}: skipped 1 malformed line\n" in err
    assert "  line 1: oom-kill:constraint=CONSTRAINT_MEMCG" in err  # a line number, not a byte


def test_terminal_escapes_in_names_are_neutralised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A process name with an escape sequence or newline cannot drive the terminal."""
    log = tmp_path / "kmsg.txt"
    log.write_text(
        "3,1,5000000,-;Out of memory: Killed process 7 (\\x1b[2Jevil\\x0aname) "
        "total-vm:1kB, anon-rss:1kB, file-rss:1kB, shmem-rss:0kB\n"
    )
    code, out, _ = run(["parse", str(log)], capsys)
    assert code == 0
    assert "\x1b" not in out
    assert "\\x1b[2Jevil\\x0aname (pid 7)" in out
    assert out.count("\n") == 1


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A wrong flag value is a usage error: exit 2, no traceback."""
    with pytest.raises(SystemExit) as e:
        main(["parse", "--format", "xml"])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`parse --format json big.log | head -1`: exit 0 and nothing on stderr."""
    import subprocess
    import sys

    big = tmp_path / "big.log"
    with big.open("w") as f:
        for _ in range(200):
            for log in sorted(CORPUS.glob("*.log")):
                f.write(log.read_text())
    proc = subprocess.Popen(
        [sys.executable, "-m", "oomwatch", "parse", "--format", "json", str(big)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    assert proc.stdout.readline().startswith(b"{")
    proc.stdout.close()  # what `head -1` does
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(60) == 0
    assert err == b""


KILL = (
    "Out of memory: Killed process 12 (x) total-vm:1kB, anon-rss:1kB, file-rss:0kB, "
    "shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0"
)


@pytest.mark.parametrize(
    ("lines", "why"),
    [
        (["Memory cgroup out of memory: Killed process abc (y)"], "could not be read"),
        (
            [
                "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,"
                "oom_memcg=/a,task_memcg=/a,task=z,pid="
            ],
            "summary cut short, no kill line after it",
        ),
        (
            [
                "bash invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
                "CPU: 0 PID: 7 Comm: bash Not tainted 6.1.0 #1",
            ],
            "report ends before its kill line",
        ),
        (["Out of memory: Killed"], "kill line cut short"),
    ],
)
def test_a_kill_that_gives_no_record_is_said(
    lines: list[str], why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A line that tells of a kill but gives nothing is named on stderr; --strict exits 1."""
    log = tmp_path / "kern.log"
    stamped = [f"Dec  1 10:00:0{i} node kernel: [ {i}.5] {t}" for i, t in enumerate([KILL, *lines])]
    log.write_text("\n".join(stamped) + "\n")
    for fmt in ("json", "text"):
        code, out, err = run(["parse", "--format", fmt, str(log)], capsys)
        assert code == 0
        assert len(out.splitlines()) == 1  # the readable kill is still printed
        assert "1 line tells of an OOM kill that gave no record" in err
        assert f"  line 2 ({why}): " in err
    code, out, err = run(["parse", "--strict", str(log)], capsys)
    assert code == 1
    assert len(out.splitlines()) == 1


def test_strict_passes_a_clean_log(capsys: pytest.CaptureFixture[str]) -> None:
    """--strict exits 0 when every kill the log tells of gave a record."""
    code, out, err = run(
        ["parse", "--strict", str(CORPUS / "034-linux618-kmsg-raw-memcg-v1.log")], capsys
    )
    assert (code, err) == (0, "")
    assert len(out.splitlines()) == 1
