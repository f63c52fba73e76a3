"""The `oomwatch` command: parse saved logs, diagnose this machine."""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import sys
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from oomwatch import __version__
from oomwatch.errors import InputError, OomwatchError, UsageError
from oomwatch.kernel.parser import ParseStats
from oomwatch.kernel.scan import LogScanner
from oomwatch.render.escape import terminal

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `oomwatch` console script."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except UsageError as e:
        print(f"oomwatch: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OomwatchError as e:
        print(f"oomwatch: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `oomwatch parse big.log | head`: end quietly
        # stdout's buffer still holds text for the closed pipe; point it at /dev/null so
        # the interpreter's final flush does not complain
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    return code


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="oomwatch",
        description="Find out what the Linux OOM killer killed, and why.",
    )
    p.add_argument("--version", action="version", version=f"oomwatch {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    parse = sub.add_parser(
        "parse",
        help="extract OOM kills from saved logs",
        description="Extract OOM kills from saved kernel logs (dmesg, "
        "kern.log, journalctl, /dev/kmsg dumps, pasted reports; .gz too).",
    )
    parse.add_argument("files", nargs="*", metavar="FILE", help="log files; - or none for stdin")
    parse.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text: one line per kill (default); json: JSON Lines, one record per kill",
    )
    parse.set_defaults(func=cmd_parse)

    diag = sub.add_parser(
        "diagnose",
        help="what was OOM-killed on this machine, and why",
        description="Read this machine's kernel log and explain every OOM kill in it.",
    )
    diag.add_argument(
        "--source",
        choices=("auto", "kmsg", "journald", "file", "dmesg"),
        default="auto",
        help="where to read the kernel log (default: the first "
        "that works of kmsg, journald, file, dmesg)",
    )
    diag.add_argument(
        "--since",
        metavar="WHEN",
        help="only kills after WHEN: a duration "
        "(30m, 2h, 7d) or a date (2026-11-25 or '2026-11-25 10:00')",
    )
    diag.add_argument("--json", action="store_true", help="JSON Lines instead of the report")
    diag.set_defaults(func=cmd_diagnose)

    run = sub.add_parser(
        "run",
        help="the agent: report OOM kills and memory conditions live",
        description="Follow the kernel log and sample memory; report every "
        "OOM kill and memory condition to the configured receivers (the "
        "console when none is configured). Settings: OOMWATCH_* variables, "
        "see .env.example.",
    )
    run.set_defaults(func=cmd_run)

    drill = sub.add_parser(
        "drill",
        help="OOM-kill a test process and check the agent saw it",
        description="Start a process in a fresh 32 MiB memory cgroup, let "
        "the kernel OOM-kill it, and wait for the running agent's incident. "
        "Needs root.",
    )
    drill.add_argument(
        "--agent", metavar="URL", help="the agent's HTTP address (default: from OOMWATCH_LISTEN)"
    )
    drill.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS")
    drill.set_defaults(func=cmd_drill)

    check = sub.add_parser(
        "check-config",
        help="validate the config file and environment",
        description="Validate the config file (--config or OOMWATCH_CONFIG) "
        "and the OOMWATCH_* variables; print the receivers (secrets masked) "
        "and the routing tree.",
    )
    check.add_argument("--config", type=Path, metavar="FILE")
    check.set_defaults(func=cmd_check_config)

    test = sub.add_parser(
        "test-notify",
        help="send a sample incident to the receivers",
        description="Send a realistic sample OOM-kill incident to every "
        "receiver (or the one named) and print what each answered.",
    )
    test.add_argument("receiver", nargs="?", metavar="RECEIVER")
    test.add_argument("--config", type=Path, metavar="FILE")
    test.set_defaults(func=cmd_test_notify)

    sil = sub.add_parser(
        "silence",
        help="keep matching incidents quiet for a while",
        description="Manage silences (OOMWATCH_SILENCES_PATH, default beside "
        "the state). The running agent reloads them on change and on SIGHUP.",
    )
    silsub = sil.add_subparsers(dest="action", required=True, metavar="ACTION")
    s_add = silsub.add_parser("add", help="add a silence")
    s_add.add_argument(
        "matchers",
        nargs="+",
        metavar="MATCHER",
        help="LABEL=VALUE, LABEL!=VALUE, LABEL=~REGEX or LABEL!~REGEX",
    )
    s_add.add_argument(
        "--for",
        dest="duration",
        default="2h",
        metavar="DURATION",
        help="how long (30m, 2h, 1d; default 2h)",
    )
    s_add.add_argument("--comment", default="", help="why")
    s_list = silsub.add_parser("list", help="list active silences")
    s_list.add_argument("--all", action="store_true", help="expired ones too")
    s_exp = silsub.add_parser("expire", help="end a silence now")
    s_exp.add_argument("id")
    sil.set_defaults(func=cmd_silence)
    return p


def cmd_silence(args: argparse.Namespace) -> int:
    """`oomwatch silence add|list|expire`."""
    import time

    from oomwatch.delivery import silences
    from oomwatch.settings import load_settings

    path = load_settings().silences_file
    now = time.time()
    if args.action == "add":
        m = _DURATION.fullmatch(args.duration.strip())
        if m is None:
            raise UsageError(f"--for {args.duration!r}: expected a duration such as 30m, 2h, 1d")
        s = silences.add(
            path, args.matchers, int(m.group(1)) * _UNITS[m.group(2).lower()], args.comment, now
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


def _settings_with(config: Path | None) -> Any:
    from oomwatch.settings import load_settings

    settings = load_settings()
    if config is not None:
        settings = settings.model_copy(update={"config": config})
    return settings


def cmd_check_config(args: argparse.Namespace) -> int:
    """`oomwatch check-config`: validate, then show the effective receivers and routes."""
    from oomwatch.notify.registry import KINDS
    from oomwatch.receivers import effective, load_file, make_notifier

    settings = _settings_with(args.config)
    file = load_file(settings.config) if settings.config else None
    eff = effective(settings, file)
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


def _print_route(node: Any, depth: int) -> None:
    pad = "  " * depth
    match = " ".join(f"{m.label}{m.op}{m.value}" for m in node.matchers) or "(everything)"
    cont = " continue" if node.continue_ else ""
    print(f"{pad}- match {match} -> {', '.join(node.receivers) or '(children)'}{cont}")
    for child in node.routes:
        _print_route(child, depth + 1)


def cmd_test_notify(args: argparse.Namespace) -> int:
    """`oomwatch test-notify`: one sample incident to each receiver, with the outcome."""
    import asyncio

    from oomwatch.errors import NotifyError
    from oomwatch.notify.sample import sample_incident
    from oomwatch.receivers import effective, load_file, make_notifier

    settings = _settings_with(args.config)
    file = load_file(settings.config) if settings.config else None
    receivers = effective(settings, file).receivers
    if args.receiver:
        receivers = [r for r in receivers if r.name == args.receiver]
        if not receivers:
            raise UsageError(f"no receiver named {args.receiver!r}")
    incident = sample_incident(settings.hostname)
    failed = 0

    async def run() -> None:
        nonlocal failed
        for r in receivers:
            notifier = make_notifier(r)
            try:
                await notifier.send(incident, f"{incident.id}/{r.name}")
            except NotifyError as e:
                failed += 1
                print(f"{r.name}: FAILED: {e}")
            else:
                print(f"{r.name}: ok")
            finally:
                await notifier.aclose()

    asyncio.run(run())
    return EXIT_FAILURE if failed else EXIT_OK


def cmd_run(_args: argparse.Namespace) -> int:
    """`oomwatch run`: the agent."""
    import logging

    from oomwatch.agent import run_agent
    from oomwatch.settings import load_settings

    settings = load_settings()
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run_agent(settings)


def cmd_drill(args: argparse.Namespace) -> int:
    """`oomwatch drill`: a real OOM kill, end to end."""
    from oomwatch.drill.run import run_drill
    from oomwatch.settings import load_settings

    url = args.agent or f"http://{load_settings().listen}"
    return run_drill(url, args.timeout)


# -- parse -----------------------------------------------------------------------------


def cmd_parse(args: argparse.Namespace) -> int:
    """`oomwatch parse`: every kill in the given logs, as text lines or JSON Lines."""
    from oomwatch.render.report import one_line

    files: list[str] = args.files or ["-"]
    failed = False
    out = sys.stdout
    for name in files:
        try:
            with _open_input(name) as (stream, reference):
                scanner = LogScanner(reference=reference)
                for kill in scanner.scan_stream(stream):
                    if args.format == "json":
                        out.write(json.dumps(kill.to_dict(), ensure_ascii=False) + "\n")
                    else:
                        out.write(one_line(kill) + "\n")
                _report_malformed(name, scanner.stats, sys.stderr)
        except InputError as e:
            print(f"oomwatch: {e}", file=sys.stderr)
            failed = True
    out.flush()
    return EXIT_USAGE if failed else EXIT_OK


@contextmanager
def _open_input(name: str) -> Iterator[tuple[BinaryIO, datetime]]:
    """A binary stream for FILE (gunzipped if needed) and the reference time for syslog years."""
    label = "standard input" if name == "-" else name
    try:
        if name == "-":
            yield _maybe_gzip(sys.stdin.buffer, label), datetime.now()
            return
        with open(name, "rb") as raw:
            mtime = datetime.fromtimestamp(os.fstat(raw.fileno()).st_mtime)
            yield _maybe_gzip(raw, label), mtime
    except BrokenPipeError:
        raise  # the reader of our output went away (`| head`): not a problem of the input
    except (OSError, EOFError, zlib.error) as e:
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise InputError(f"cannot read {label}: {reason}") from e


def _maybe_gzip(stream: BinaryIO, _label: str) -> BinaryIO:
    head = stream.peek(2)[:2] if hasattr(stream, "peek") else b""
    if head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    return stream


def _report_malformed(name: str, stats: ParseStats, err: TextIO) -> None:
    if not stats.malformed:
        return
    label = "standard input" if name == "-" else name
    err.write(
        f"oomwatch: {label}: skipped {stats.malformed} malformed line"
        f"{'s' if stats.malformed != 1 else ''}\n"
    )
    for where, text in stats.malformed_examples:
        err.write(f"  {where}: {terminal(text)}\n")


# -- diagnose ----------------------------------------------------------------------------


def cmd_diagnose(args: argparse.Namespace) -> int:
    """`oomwatch diagnose`: read this machine's kernel log and explain every kill."""
    from rich.console import Console

    from oomwatch.render.report import print_report
    from oomwatch.sources.oneshot import Roots, read_local_log

    now = datetime.now(UTC)
    since = parse_since(args.since, now) if args.since else None
    log = read_local_log(args.source, since=since, roots=Roots.from_env(os.environ))
    if args.json:
        for kill in log.kills:
            sys.stdout.write(json.dumps(kill.to_dict(), ensure_ascii=False) + "\n")
        return EXIT_OK
    console = Console(highlight=False)
    if not log.kills:
        console.print(_nothing_found(log.source, since, log.first_uptime_s, log.lines))
    else:
        print_report(console, log.kills, source=log.source, local=True, now=now)
    for note in log.tried:
        console.print(f"(could not read {terminal(note)})", style="dim", markup=False)
    if log.stats.malformed:
        console.print(f"({log.stats.malformed} malformed lines skipped)", style="dim")
    return EXIT_OK


def _nothing_found(
    source: str, since: datetime | None, first_uptime: float | None, lines: int
) -> str:
    span = f" since {since.astimezone():%Y-%m-%d %H:%M}" if since else ""
    text = f"No OOM kills found in {source}{span} ({lines} lines read)."
    if first_uptime is not None and first_uptime > 1.0:
        text += (
            f" The log only goes back to {first_uptime:.0f} s after boot: the kernel's "
            "ring buffer has overwritten older messages, so earlier kills cannot be seen "
            "there (a persistent journal or kern.log keeps them)."
        )
    elif not since:
        text += " No process has been killed for lack of memory since the log begins."
    return text


_DURATION = re.compile(r"(\d+)\s*(s|sec|m|min|h|d|w)", re.I)
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: datetime) -> datetime:
    """`--since`: a duration back from now (`30m`, `2h`, `7d`) or a local date and time."""
    m = _DURATION.fullmatch(text.strip())
    if m:
        return now - timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2).lower()])
    try:
        return datetime.fromisoformat(text.strip()).astimezone()
    except ValueError:
        raise UsageError(
            f"--since {text!r}: expected a duration such as 30m, 2h or 7d, or a date such as "
            "2026-11-25 or '2026-11-25 10:00'"
        ) from None


if __name__ == "__main__":
    sys.exit(main())
