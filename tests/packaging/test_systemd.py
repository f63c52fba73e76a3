"""The systemd unit: valid for systemd, hardened, and with what the agent needs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).parents[2] / "packaging" / "oomwatch.service"


def directives() -> dict[str, list[str]]:
    """Every `Key=value` of the unit."""
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """`systemd-analyze verify` finds no error and no unknown directive."""
    exe = shutil.which("oomwatch") or str(Path(sys.executable).with_name("oomwatch"))
    assert Path(exe).exists()
    unit = tmp_path / "oomwatch.service"
    unit.write_text(UNIT.read_text().replace("/opt/oomwatch/bin/oomwatch", exe))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Unknown" not in done.stderr
    assert "oomwatch.service" not in done.stderr  # no warning about our unit


def test_hardening_and_needs() -> None:
    """Least privilege, with CAP_SYSLOG for /dev/kmsg, a state directory and a low OOM score."""
    d = directives()
    assert d["NoNewPrivileges"] == ["yes"]
    assert d["ProtectSystem"] == ["strict"]
    assert d["DynamicUser"] == ["yes"]
    assert set(d["CapabilityBoundingSet"][0].split()) == {"CAP_SYSLOG", "CAP_DAC_READ_SEARCH"}
    assert d["AmbientCapabilities"] == d["CapabilityBoundingSet"]
    assert d["OOMScoreAdjust"] == ["-900"]
    assert d["StateDirectory"] == ["oomwatch"]
    assert "OOMWATCH_STATE_DIR=/var/lib/oomwatch" in d["Environment"]
    assert d["ExecStart"] == ["/opt/oomwatch/bin/oomwatch run"]  # the venv of the README
    # the agent speaks the notify protocol (tests/test_sdnotify.py): readiness and a watchdog
    assert d["Type"] == ["notify"]
    assert d["NotifyAccess"] == ["main"]
    assert int(d["WatchdogSec"][0]) >= 20  # three sample intervals: a slow sample is no fault
