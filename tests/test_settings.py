"""Settings from the environment; a mistake is one clear line and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from oomwatch.errors import UsageError
from oomwatch.settings import load_settings


def test_defaults_and_nesting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults are sensible; nested thresholds take `__`."""
    monkeypatch.setenv("OOMWATCH_THRESHOLDS__MIN_DURATION_S", "5")
    s = load_settings()
    assert s.sample_interval == 10.0
    assert s.oom_score_adj == -900
    assert s.listen == "127.0.0.1:9753"
    assert s.thresholds.min_duration_s == 5.0
    assert s.thresholds.mem_available_warn_pct == 10.0


def test_secret_from_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The webhook URL can come from a mounted file; an unreadable file is a usage error."""
    f = tmp_path / "url"
    f.write_text("http://127.0.0.1:1/x\n")
    monkeypatch.setenv("OOMWATCH_WEBHOOK_URL_FILE", str(f))
    assert load_settings().webhook == "http://127.0.0.1:1/x"
    monkeypatch.setenv("OOMWATCH_WEBHOOK_URL_FILE", str(tmp_path / "missing"))
    with pytest.raises(UsageError, match="cannot read"):
        _ = load_settings().webhook


def test_bad_value_is_exit_2_without_traceback(tmp_path: Path) -> None:
    """`oomwatch run` with a bad variable prints one line naming it and exits 2."""
    done = subprocess.run(
        [sys.executable, "-m", "oomwatch", "run"],
        capture_output=True,
        text=True,
        check=False,
        env={"OOMWATCH_SAMPLE_INTERVAL": "often", "OOMWATCH_STATE_DIR": str(tmp_path)},
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "OOMWATCH_SAMPLE_INTERVAL" in done.stderr
    assert done.stderr.count("\n") == 1
    listen = subprocess.run(
        [sys.executable, "-m", "oomwatch", "run"],
        capture_output=True,
        text=True,
        check=False,
        env={"OOMWATCH_LISTEN": "nope", "OOMWATCH_STATE_DIR": str(tmp_path)},
    )
    assert listen.returncode == 2
    assert "expected HOST:PORT" in listen.stderr
