"""oomwatch: tells you, at once and once in effect, when Linux OOM-kills a process, and why."""

__version__ = "0.1.0"

import sys as _sys

# httpx imports its command-line tool (rich, click, pygments: ~4.6 MB on every node)
# whenever click is installed; the agent never runs it, and a None entry makes that
# import fail the way httpx expects when click is absent.
_sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
