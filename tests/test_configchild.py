"""The settings and receivers checked in a child process, as the agent has them checked."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import time
from pathlib import Path

import pytest

from oomwatch import configchild
from oomwatch.errors import ConfigError, OomwatchError


def test_the_environment_checked_in_a_child(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The child reads the settings from the environment and names the receivers in force."""
    monkeypatch.chdir(tmp_path)  # no .env of the working tree
    monkeypatch.setenv("OOMWATCH_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    monkeypatch.setenv("OOMWATCH_SAMPLE_INTERVAL", "3")
    settings, receivers = configchild.finish(configchild.start())
    assert settings.sample_interval == 3.0
    assert [(r.name, r.kind) for r in receivers.receivers] == [
        ("webhook", "webhook"),
        ("console", "console"),
    ]
    assert receivers.receivers[0].kind_config.url == "http://127.0.0.1:9/hook"


def test_a_mistake_is_the_childs_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A bad setting is a ConfigError (exit code 2 at the CLI) with the line the child wrote."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OOMWATCH_SAMPLE_INTERVAL", "0")
    monkeypatch.setenv("OOMWATCH_SLACK_BOT_TOKEN", "xoxb-never-printed")
    with pytest.raises(ConfigError) as e:
        configchild.finish(configchild.start())
    assert str(e.value) == "bad setting: OOMWATCH_SAMPLE_INTERVAL: Input should be greater than 0"


def test_a_crashed_child_is_its_last_line() -> None:
    """A child that died of a bug is reported by its last line, never as the user's mistake."""
    err = b'Traceback (most recent call last):\n  File "x"\nRuntimeError: boom\n'
    with pytest.raises(OomwatchError) as e:
        configchild._result(1, b"", err)
    assert not isinstance(e.value, ConfigError)
    assert str(e.value) == "checking the configuration failed: RuntimeError: boom"
    with pytest.raises(OomwatchError, match="failed: exit status -9"):
        configchild._result(-9, b"", b"")


def test_a_reload_reads_the_file_for_the_agents_own_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """At a reload the child gets the agent's settings, not the environment's of now."""
    from oomwatch.validation import load_settings

    monkeypatch.chdir(tmp_path)
    config = tmp_path / "receivers.yaml"
    config.write_text("receivers:\n  - name: team\n    webhook: {url: 'http://127.0.0.1:9/t'}\n")
    settings = dataclasses.replace(load_settings({}), config=config, console=False)
    monkeypatch.setenv("OOMWATCH_SAMPLE_INTERVAL", "0")  # would fail if it were read again
    receivers = asyncio.run(configchild.receivers(settings))
    assert [r.name for r in receivers.receivers] == ["team"]
    config.write_text("receivers:\n  - name: team\n    webhook: {url: 'ftp://x'}\n")
    with pytest.raises(ConfigError, match=r"receivers\.0\.webhook\.url: the scheme must be"):
        asyncio.run(configchild.receivers(settings))


def test_the_child_is_the_first_the_kernel_kills(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Beside the agent in a full memory cgroup, the check dies, not the agent."""
    monkeypatch.chdir(tmp_path)
    command, env = configchild._command()
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    try:
        score = Path(f"/proc/{child.pid}/oom_score_adj")
        deadline = time.monotonic() + 30
        while score.read_text().strip() != "1000":
            assert time.monotonic() < deadline, "the child never raised its oom_score_adj"
            time.sleep(0.01)
    finally:
        child.communicate(b"")  # the environment's settings; the child then ends
    assert child.returncode == 0
