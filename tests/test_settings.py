"""Settings from the environment; a mistake is one clear line and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from oomwatch.errors import UsageError
from oomwatch.validation import load_settings


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


def _check_config(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oomwatch", "check-config"],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


SECRET = "xoxb-1234567890-abcdefSECRET"


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"OOMWATCH_SLACK_CHANEL": "#oom", "OOMWATCH_SLACK_BOT_TOKEN": SECRET},
            "oomwatch: OOMWATCH_SLACK_CHANEL: unknown setting; "
            "did you mean OOMWATCH_SLACK_CHANNEL?",
        ),
        (
            {"OOMWATCH_SLAK_BOT_TOKEN": SECRET},
            "oomwatch: OOMWATCH_SLAK_BOT_TOKEN: unknown setting; "
            "did you mean OOMWATCH_SLACK_BOT_TOKEN?",
        ),
        (
            {"OOMWATCH_SLACK_BOT_TOKEN": SECRET},
            "oomwatch: OOMWATCH_SLACK_*: a bot token needs a channel",
        ),
        (
            {"OOMWATCH_WEBHOOK_URL": "htp://hooks.example/x"},
            "oomwatch: OOMWATCH_WEBHOOK_URL: the scheme must be http or https, not 'htp'",
        ),
        (
            {"OOMWATCH_WEBHOOK_URL": "hooks.example/x"},
            "oomwatch: OOMWATCH_WEBHOOK_URL: no scheme: write http:// or https:// before the host",
        ),
        (
            {"OOMWATCH_WEBHOOK_URL": "http://127.0.0.1:99999/x"},
            "oomwatch: OOMWATCH_WEBHOOK_URL: port 99999 is out of range (1-65535)",
        ),
    ],
)
def test_each_mistake_is_one_line_and_exit_2(
    env: dict[str, str], line: str, tmp_path: Path
) -> None:
    """A misspelt name gets the closest known one; a bad value names its variable; no secret."""
    done = _check_config(env, tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", line + "\n")
    assert SECRET[:6] not in done.stderr


def test_dotenv_file_is_read_and_checked(tmp_path: Path) -> None:
    """A `.env` in the working directory (or OOMWATCH_ENV_FILE) sets receivers; its typos too."""
    (tmp_path / ".env").write_text("OOMWATCH_WEBHOOK_URL=http://127.0.0.1:9/hook\n")
    done = _check_config({}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "webhook: webhook (http://127.0.0.1:9/<redacted>)" in done.stdout
    other = tmp_path / "oomwatch.env"
    other.write_text("OOMWATCH_WEBHOK_URL=http://127.0.0.1:9/hook\n")
    done = _check_config({"OOMWATCH_ENV_FILE": str(other)}, tmp_path)
    assert done.returncode == 2
    assert done.stderr == (
        "oomwatch: OOMWATCH_WEBHOK_URL: unknown setting; did you mean OOMWATCH_WEBHOOK_URL?"
        f" (in {other})\n"
    )


def test_docs_list_every_setting() -> None:
    """docs/config.md names every variable oomwatch reads, and no other."""
    import re

    from oomwatch.settings import known_variables

    root = Path(__file__).parents[1]
    text = (root / "docs" / "config.md").read_text()
    documented = set(re.findall(r"OOMWATCH_[A-Z0-9_]*[A-Z0-9]", text))
    assert documented == set(known_variables())
    example = (root / ".env.example").read_text()
    assert set(re.findall(r"^(OOMWATCH_[A-Z0-9_]+)=", example, re.M)) == set(known_variables())
