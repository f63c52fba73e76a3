"""`oomwatch diagnose` against fixture trees: sources, fallbacks, the report, nothing found."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from oomwatch.cli import main
from oomwatch.errors import LogUnavailableError
from oomwatch.sources.oneshot import Roots, read_local_log
from tests.conftest import CORPUS

KMSG = (CORPUS / "034-linux618-kmsg-raw-memcg-v1.log").read_bytes()


def fixture_roots(tmp_path: Path, *, kmsg: bytes | None, kern_log: str | None = None) -> Roots:
    """A fake machine: a kmsg dump, /proc/stat with a boot time, and /var/log."""
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "stat").write_text("cpu  1 2 3\nbtime 1700000000\n")
    (tmp_path / "log").mkdir()
    if kern_log is not None:
        (tmp_path / "log" / "kern.log").write_text(kern_log)
    kmsg_path = tmp_path / "kmsg"
    if kmsg is not None:
        kmsg_path.write_bytes(kmsg)
    return Roots(kmsg=kmsg_path, proc=tmp_path / "proc", log_dir=tmp_path / "log")


def no_commands(argv: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
    """A runner for a machine where journalctl and dmesg are not installed."""
    raise FileNotFoundError(2, "No such file or directory", argv[0])


def test_kmsg_source_gives_wall_times_from_boot_time(tmp_path: Path) -> None:
    """Kills stamped with uptime only get a wall time from /proc/stat's btime."""
    log = read_local_log("auto", roots=fixture_roots(tmp_path, kmsg=KMSG), run=no_commands)
    assert log.source.endswith("kmsg")
    assert [k.victim.pid for k in log.kills] == [21502]
    t = log.kills[0].time
    assert t is not None
    assert t.timestamp() == pytest.approx(1700000000 + 1773.354019)


def test_falls_back_to_log_files(tmp_path: Path) -> None:
    """Without a readable kmsg or journal, kern.log is read, and the failures are listed."""
    kern = (CORPUS / "013-aks-ubuntu2204-cgv2-containerd-syslog.log").read_text()
    roots = fixture_roots(tmp_path, kmsg=None, kern_log=kern)
    log = read_local_log("auto", roots=roots, run=no_commands)
    assert log.source == str(roots.log_dir / "kern.log")
    assert [k.victim.pid for k in log.kills] == [183960]
    assert [t.split(":")[0] for t in log.tried] == ["/dev/kmsg", "journalctl"]


def test_journald_json_through_journalctl(tmp_path: Path) -> None:
    """journalctl -k -o json output is read record by record, with its realtime stamps."""
    records = [
        {
            "MESSAGE": line.split(";", 1)[1],
            "_TRANSPORT": "kernel",
            "_HOSTNAME": "n1",
            "__REALTIME_TIMESTAMP": str(1700001773354019 + i),
            "_SOURCE_MONOTONIC_TIMESTAMP": line.split(",")[2],
        }
        for i, line in enumerate(KMSG.decode().splitlines())
    ]
    seen: list[list[str]] = []

    def journalctl(argv: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
        seen.append(list(argv))
        out = "\n".join(json.dumps(r) for r in records).encode()
        return subprocess.CompletedProcess(list(argv), 0, out, b"")

    log = read_local_log("journald", roots=fixture_roots(tmp_path, kmsg=None), run=journalctl)
    assert seen == [["journalctl", "-k", "-o", "json", "--no-pager", "-q", "-b"]]
    assert [(k.victim.pid, k.host) for k in log.kills] == [(21502, "n1")]


def test_nothing_readable_says_why(tmp_path: Path) -> None:
    """When no source can be read, the error lists what each one answered."""
    with pytest.raises(LogUnavailableError) as e:
        read_local_log("auto", roots=fixture_roots(tmp_path, kmsg=None), run=no_commands)
    text = str(e.value)
    assert "/dev/kmsg: No such file or directory" in text
    assert "kern.log: No such file or directory" in text


def test_report_for_a_person(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The text report names victim, limit, cause, top consumers and what to do."""
    roots = fixture_roots(tmp_path, kmsg=KMSG)
    monkeypatch.setenv("OOMWATCH_KMSG_PATH", str(roots.kmsg))
    monkeypatch.setenv("OOMWATCH_PROC_ROOT", str(roots.proc))
    monkeypatch.setenv("OOMWATCH_LOG_DIR", str(roots.log_dir))
    monkeypatch.setenv("COLUMNS", "250")  # one sentence per line, as on a wide terminal
    assert main(["diagnose", "--source", "kmsg"]) == 0
    out = capsys.readouterr().out
    assert "1 OOM kill found in" in out
    assert "python3 (pid 21502), user root (uid 0)" in out
    assert "memory cgroup limit of /demo-limit48m: 48.0 MiB used of 48.0 MiB" in out
    assert "was killed because /demo-limit48m reached its memory limit of 48.0 MiB" in out
    assert "Top memory consumers" in out
    assert "What to do:" in out
    assert "raise the limit" in out
    # piped (capsys is no terminal): sentences on one line, nothing padded at line ends
    assert not [line for line in out.splitlines() if line != line.rstrip()]
    assert any(
        "was killed because /demo-limit48m reached its memory limit of 48.0 MiB." in line
        for line in out.splitlines()
    )


def test_nothing_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No kills: it says so, and that the log reaches back to boot."""
    quiet = b"6,0,0,-;Linux version 6.18\n6,1,5,-;Command line: quiet\n"
    roots = fixture_roots(tmp_path, kmsg=quiet)
    monkeypatch.setenv("OOMWATCH_KMSG_PATH", str(roots.kmsg))
    assert main(["diagnose", "--source", "kmsg"]) == 0
    out = capsys.readouterr().out
    assert "No OOM kills found" in out
    assert "since the log begins" in out


def test_wrapped_ring_buffer_is_explained() -> None:
    """When the ring buffer no longer starts at boot, the note says older kills may be gone."""
    from oomwatch.cli.logs import _nothing_found

    text = _nothing_found("/dev/kmsg", None, 51234.5, 9000)
    assert "only goes back to 51234 s after boot" in text


def test_since_filters_and_rejects_nonsense(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--since drops older kills; a value it cannot read is exit 2 with the accepted forms."""
    roots = fixture_roots(tmp_path, kmsg=KMSG)  # the kill is in 2023: far past
    monkeypatch.setenv("OOMWATCH_KMSG_PATH", str(roots.kmsg))
    monkeypatch.setenv("OOMWATCH_PROC_ROOT", str(roots.proc))
    assert main(["diagnose", "--source", "kmsg", "--since", "2h", "--json"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["diagnose", "--since", "yesterday-ish"]) == 2
    assert "expected a duration such as 30m" in capsys.readouterr().err


def test_json_names_this_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The ring buffer prints no host: diagnose --json fills in this machine's name."""
    import socket

    roots = fixture_roots(tmp_path, kmsg=KMSG)
    monkeypatch.setenv("OOMWATCH_KMSG_PATH", str(roots.kmsg))
    monkeypatch.setenv("OOMWATCH_PROC_ROOT", str(roots.proc))
    assert main(["diagnose", "--source", "kmsg", "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["host"] == socket.gethostname()
