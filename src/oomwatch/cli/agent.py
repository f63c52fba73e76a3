"""`oomwatch run` and `oomwatch drill`: the agent, and a real kill to test it."""

from __future__ import annotations

import argparse
import sys

# httpcore imports these whenever they are installed, for a trio backend and HTTP/2;
# the agent runs on asyncio and speaks HTTP/1.1, and would keep them in memory (4 MB)
UNUSED_BY_THE_AGENT = ("trio", "h2")


def cmd_run(_args: argparse.Namespace) -> int:
    """`oomwatch run`: the agent."""
    keep_unused_out()
    from oomwatch import configchild

    # checked in a child process, so pydantic never enters this one; the agent's own
    # imports meanwhile take as long
    check = configchild.start()
    from oomwatch.agent import run_agent
    from oomwatch.logsetup import configure
    from oomwatch.redact import remember, secrets_of

    settings, receivers = configchild.finish(check)
    configure(settings.log_format, level=settings.log_level)
    remember(secrets_of(settings))
    return run_agent(settings, receivers)


def keep_unused_out() -> None:
    """Keep the packages the agent never uses out of its memory, installed or not."""
    for name in UNUSED_BY_THE_AGENT:
        # None: an import of it fails, as if it were not installed
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def cmd_drill(args: argparse.Namespace) -> int:
    """`oomwatch drill`: a real OOM kill, end to end."""
    from oomwatch.drill.run import run_drill
    from oomwatch.validation import load_settings

    url = args.agent or f"http://{load_settings().listen}"
    return run_drill(url, args.timeout, page=args.page)
