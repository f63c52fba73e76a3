"""Silences: the file, the CLI, and a running agent that reloads them on change."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from oomwatch.delivery import silences
from oomwatch.errors import UsageError


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `oomwatch silence ...` with the silences in tmp_path."""
    return subprocess.run(
        [sys.executable, "-m", "oomwatch", "silence", *args],
        capture_output=True,
        text=True,
        check=False,
        env={"OOMWATCH_SILENCES_PATH": str(tmp_path / "s.json")},
    )


def test_add_list_expire(tmp_path: Path) -> None:
    """Add with matchers and a duration, list it, expire it."""
    added = cli(
        tmp_path,
        "add",
        "comm=worker",
        "namespace=~shop|cart",
        "--for",
        "30m",
        "--comment",
        "deploy in progress",
    )
    assert added.returncode == 0, added.stderr
    sid = added.stdout.split()[1]
    listed = cli(tmp_path, "list").stdout
    assert sid in listed
    assert "comm=worker namespace=~shop|cart" in listed
    assert "# deploy in progress" in listed
    assert cli(tmp_path, "expire", sid).returncode == 0
    assert cli(tmp_path, "list").stdout.strip() == "no active silences"
    assert "expired" in cli(tmp_path, "list", "--all").stdout


@pytest.mark.parametrize(
    "args", [["add"], ["add", "nope=1"], ["add", "comm=x", "--for", "soon"], ["expire", "ffffffff"]]
)
def test_mistakes_exit_2(tmp_path: Path, args: list[str]) -> None:
    """A silence without matchers, a bad matcher or duration, an unknown id: exit 2."""
    done = cli(tmp_path, *args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


def test_matching_and_end(tmp_path: Path) -> None:
    """A silence covers matching labels until it ends."""
    path = tmp_path / "s.json"
    s = silences.add(path, ["kind=oom_kill", "comm=~stress.*"], 60, "", now=1000.0)
    (loaded,) = silences.load(path)
    assert loaded == s
    labels = {"kind": "oom_kill", "comm": "stress-ng-vm"}
    assert silences.silencing([loaded], labels, 1010.0) == s
    assert silences.silencing([loaded], {**labels, "comm": "nginx"}, 1010.0) is None
    assert silences.silencing([loaded], labels, 1061.0) is None


def test_bad_file(tmp_path: Path) -> None:
    """A broken file is a clear error, not a crash."""
    path = tmp_path / "s.json"
    path.write_text("[{")
    with pytest.raises(UsageError, match="not valid JSON"):
        silences.load(path)
    path.write_text('[{"id": "a", "matchers": ["bad"], "ends_at": 1}]')
    with pytest.raises(UsageError, match="entry 0"):
        silences.load(path)
    path.write_bytes(b'[{"id": "a", "matchers": ["comm=caf\xe9"], "ends_at": 1}]')
    with pytest.raises(UsageError, match="not UTF-8: byte 0xe9 at offset 35"):
        silences.load(path)
