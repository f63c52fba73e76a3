"""`oomwatch check-config`, `test-notify` and `silence`: the receivers and their quiet times."""

from __future__ import annotations

import argparse
import dataclasses
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from oomwatch.cli.common import DURATION, EXIT_FAILURE, EXIT_OK, UNITS
from oomwatch.errors import UsageError
from oomwatch.render.escape import terminal

if TYPE_CHECKING:
    from oomwatch.receivers import RouteConfig
    from oomwatch.settings import Settings


def cmd_silence(args: argparse.Namespace) -> int:
    """`oomwatch silence add|list|expire`."""
    import time

    from oomwatch.delivery import silences
    from oomwatch.validation import load_settings

    path = load_settings().silences_file
    now = time.time()
    if args.action == "add":
        m = DURATION.fullmatch(args.duration.strip())
        if m is None:
            raise UsageError(f"--for {args.duration!r}: expected a duration such as 30m, 2h, 1d")
        s = silences.add(
            path, args.matchers, int(m.group(1)) * UNITS[m.group(2).lower()], args.comment, now
        )
        print(f"silence {s.id} until {datetime.fromtimestamp(s.ends_at):%Y-%m-%d %H:%M}")
        return EXIT_OK
    if args.action == "expire":
        s = silences.expire(path, args.id, now)
        print(f"silence {s.id} expired")
        return EXIT_OK
    shown = [s for s in silences.load(path) if args.all or s.active(now)]
    if not shown:
        print("no active silences" if not args.all else "no silences")
    for s in shown:
        state = "active" if s.active(now) else "expired"
        matchers = " ".join(f"{x.label}{x.op}{x.value}" for x in s.matchers)
        until = f"{datetime.fromtimestamp(s.ends_at):%Y-%m-%d %H:%M}"
        comment = f"  # {s.comment}" if s.comment else ""
        print(terminal(f"{s.id}  {state:7}  until {until}  {matchers}{comment}"))
    return EXIT_OK


def _settings_with(config: Path | None) -> Settings:
    from oomwatch.validation import load_settings

    settings = load_settings()
    if config is not None:
        settings = dataclasses.replace(settings, config=config)
    return settings


def cmd_check_config(args: argparse.Namespace) -> int:
    """`oomwatch check-config`: validate, then show the effective receivers and routes."""
    from oomwatch.notify.registry import KINDS
    from oomwatch.receivers import make_notifier
    from oomwatch.validation import receivers_of

    settings = _settings_with(args.config)
    eff = receivers_of(settings)
    for r in eff.receivers:
        make_notifier(r)  # reads every secret file: a missing one is reported here
    print(f"config: {settings.config or '(none: receivers from the environment)'}")
    print("receivers:")
    for r in eff.receivers:
        shown = KINDS[r.kind].describe(r.kind_config)
        print(terminal(f"  {r.name}: {r.kind} {shown}".rstrip()))
    print("routes:")
    if eff.route is not None:
        _print_route(eff.route, 1)
    return EXIT_OK


def _print_route(node: RouteConfig, depth: int) -> None:
    pad = "  " * depth
    match = " ".join(f"{m.label}{m.op}{m.value}" for m in node.matchers) or "(everything)"
    cont = " continue" if node.continue_ else ""
    print(f"{pad}- match {match} -> {', '.join(node.receivers) or '(children)'}{cont}")
    for child in node.routes:
        _print_route(child, depth + 1)


def cmd_test_notify(args: argparse.Namespace) -> int:
    """`oomwatch test-notify`: one sample incident to each receiver, with the outcome."""
    import asyncio
    import time

    from oomwatch.errors import NotifyError
    from oomwatch.notify import Recovers
    from oomwatch.notify.registry import KINDS
    from oomwatch.notify.sample import sample_incident
    from oomwatch.receivers import make_notifier
    from oomwatch.validation import receivers_of

    settings = _settings_with(args.config)
    receivers = receivers_of(settings).receivers
    if args.receiver:
        receivers = [r for r in receivers if r.name == args.receiver]
        if not receivers:
            raise UsageError(f"no receiver named {args.receiver!r}")
    else:
        # the console is this process's own output: nothing to test unless asked by name
        receivers = [r for r in receivers if not KINDS[r.kind].local] or receivers
    incident = sample_incident(settings.hostname)
    failed = 0

    async def run() -> None:
        nonlocal failed
        for r in receivers:
            notifier = make_notifier(r)
            started = time.perf_counter()
            try:
                await notifier.send(incident, f"{incident.id}/{r.name}")
            except NotifyError as e:
                failed += 1
                print(terminal(f"{r.name}: FAILED: {e}"))
            else:
                print(f"{r.name}: sent in {(time.perf_counter() - started) * 1000:.0f} ms")
                if isinstance(notifier, Recovers):
                    try:
                        caveat = await notifier.caveat()
                    except NotifyError as e:
                        caveat = f"cannot tell whether a crash could repeat a message: {e}"
                    if caveat:
                        print(terminal(f"{r.name}: note: {caveat}"))
            finally:
                await notifier.aclose()

    asyncio.run(run())
    return EXIT_FAILURE if failed else EXIT_OK
