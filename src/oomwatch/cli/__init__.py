"""The `oomwatch` command: parse saved logs, diagnose this machine, run the agent."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from oomwatch import __version__
from oomwatch.cli.agent import cmd_drill, cmd_run
from oomwatch.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from oomwatch.cli.config import cmd_check_config, cmd_silence, cmd_test_notify
from oomwatch.cli.logs import cmd_diagnose, cmd_parse
from oomwatch.errors import OomwatchError, UsageError

__all__ = ["main"]


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
    _add_log_commands(sub)
    _add_agent_commands(sub)
    _add_config_commands(sub)
    _add_silence(sub)
    return p


def _add_log_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    _add_strict(parse)
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
    _add_strict(diag)
    diag.set_defaults(func=cmd_diagnose)


def _add_strict(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when a line tells of an OOM kill that gave no record",
    )


def _add_agent_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    drill.add_argument(
        "--page",
        action="store_true",
        help="also deliver to receivers that page people (PagerDuty, Opsgenie)",
    )
    drill.set_defaults(func=cmd_drill)


def _add_config_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _add_silence(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


if __name__ == "__main__":
    sys.exit(main())
