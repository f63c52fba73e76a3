"""The settings and receivers, checked in a short-lived child process for the agent.

`oomwatch.validation` needs pydantic and pydantic-settings, about 11 MB that would
stay resident for the agent's life; the child (`python -m oomwatch.configchild`)
holds them for a third of a second, then exits. It runs the same code as the agent
(this package's directory comes first on its path, never the working directory),
gets the agent's settings pickled on stdin at a reload, and writes back pickled
plain objects, or the one line that says what is wrong and exit code 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

from oomwatch.errors import ConfigError, OomwatchError, UsageError
from oomwatch.receivers import FileConfig
from oomwatch.settings import Settings


def _command() -> tuple[list[str], dict[str, str]]:
    here = str(Path(__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    return [sys.executable, "-P", "-m", "oomwatch.configchild"], {**os.environ, "PYTHONPATH": path}


def _result(code: int | None, out: bytes, err: bytes) -> tuple[Settings, FileConfig]:
    if code == 0:
        settings, receivers = pickle.loads(out)  # noqa: S301 (our own child's answer)
        return settings, receivers
    text = err.decode(errors="replace").strip()
    if code == 2:  # the user's mistake, in one line naming the setting or the file's place
        raise ConfigError(text)
    last = text.splitlines()[-1] if text else f"exit status {code}"
    raise OomwatchError(f"checking the configuration failed: {last}")


def start() -> subprocess.Popen[bytes]:
    """Start checking the environment's settings and their receivers; `finish` waits."""
    command, env = _command()
    try:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
    except OSError as e:  # no memory or no process slot
        raise OomwatchError(f"cannot start the configuration check: {e}") from e


def finish(check: subprocess.Popen[bytes]) -> tuple[Settings, FileConfig]:
    """The settings and the receivers in force, or the error that says what is wrong."""
    out, err = check.communicate()
    return _result(check.returncode, out, err)


async def receivers(settings: Settings) -> FileConfig:
    """The receivers in force for these settings, read again without blocking the loop."""
    command, env = _command()
    try:
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
    except OSError as e:
        raise OomwatchError(f"cannot start the configuration check: {e}") from e
    out, err = await proc.communicate(pickle.dumps(settings))
    return _result(proc.returncode, out, err)[1]


def first_to_go() -> None:
    """Ask the kernel to kill this process before any other if memory runs out.

    The check runs beside the agent, in its memory cgroup: when that cgroup is full,
    the check dies, the reload is refused with a log line, and the agent lives on.
    """
    with contextlib.suppress(OSError):  # raising one's own score needs no privilege
        Path("/proc/self/oom_score_adj").write_text("1000")


def child() -> int:
    """The child: settings (pickled on stdin, else read here) to checked receivers."""
    from oomwatch.validation import load_settings, receivers_of

    given = sys.stdin.buffer.read()
    try:
        # the agent's own settings, from the agent that started this process
        settings = pickle.loads(given) if given else load_settings()  # noqa: S301
        receivers = receivers_of(settings)
    except UsageError as e:
        print(e, file=sys.stderr)
        return 2
    sys.stdout.buffer.write(pickle.dumps((settings, receivers)))
    return 0


if __name__ == "__main__":
    first_to_go()  # before the imports that make this process as large as the agent
    sys.exit(child())
