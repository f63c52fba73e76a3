"""The console: a block for a person at a terminal, one line for a log, JSON for a pipeline."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import re
from dataclasses import replace

import pytest

from oomwatch.enrich.host import this_node
from oomwatch.incidents.builder import IncidentBuilder
from oomwatch.kernel.scan import LogScanner
from oomwatch.model import Incident
from oomwatch.notify.console import ConsoleNotifier
from oomwatch.sampling.sampler import PidCache

ESC = "\x1b"


def kill_incident(comm: str = "payments-api", pid: int = 10523, *, ago_s: float = 0.0) -> Incident:
    """A memcg kill as the builder makes it, `ago_s` seconds before the agent read it."""
    text = (
        f"<4>[  100.000000] {comm} invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0,"
        " oom_score_adj=0\n"
        "<6>[  100.000100] memory: usage 49152kB, limit 49152kB, failcnt 12\n"
        "<6>[  100.000200] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,"
        f"mems_allowed=0,oom_memcg=/shop-api,task_memcg=/shop-api,task={comm},pid={pid},uid=0\n"
        f"<3>[  100.000300] Memory cgroup out of memory: Killed process {pid} ({comm})"
        " total-vm:60000kB, anon-rss:47000kB, file-rss:1200kB, shmem-rss:0kB, UID:0"
        " pgtables:200kB oom_score_adj:0\n"
    )
    (kill,) = LogScanner().scan_lines(text.replace(comm, "hog").splitlines())
    when = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=ago_s)
    # the comm is set after parsing: a log line cannot hold the newline a hostile one may
    kill = replace(kill, time=when, victim=replace(kill.victim, comm=comm))
    inc = IncidentBuilder(this_node("boot", "node-3"), PidCache()).kill(kill)
    return replace(inc, detected_at=when.timestamp() + ago_s)


def shown(console: ConsoleNotifier, *incidents: Incident) -> str:
    """What the console printed for these incidents, in order."""
    for inc in incidents:
        asyncio.run(console.send(inc, f"{inc.id}/console"))
    assert isinstance(console.stream, io.StringIO)
    return console.stream.getvalue()


def test_terminal_block_has_time_host_victim_where_facts_and_advice_once() -> None:
    """The first kill of a key is a coloured block; the next is its headline and 'same as'."""
    first, again = kill_incident(), kill_incident(pid=10524)
    assert first.key == again.key
    out = shown(ConsoleNotifier(io.StringIO(), style="terminal", colour=True), first, again)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    lines = plain.splitlines()
    clock = dt.datetime.fromtimestamp(first.detected_at).strftime("%H:%M:%S")
    assert lines[0] == f"{clock} node-3  OOM kill  payments-api (pid 10523) in cgroup /shop-api"
    assert lines[1].startswith("  payments-api (pid 10523) was killed because /shop-api")
    assert "limit 48.0 MiB of /shop-api" in lines[2]
    assert "user root (uid 0)" in lines[2]
    assert lines[3] == "  what to do:"
    advice = [line for line in lines if line.startswith("    - ")]
    assert advice, "the first kill of a key carries the advice"
    assert lines[-1].startswith(f"{clock} node-3  OOM kill  payments-api (pid 10524)")
    assert lines[-1].endswith(f"same as {clock}")
    assert plain.count("what to do:") == 1
    assert f"{ESC}[1;31m" in out or f"{ESC}[1;33m" in out, "the label is coloured"


def test_backlog_kill_is_marked_with_its_own_time() -> None:
    """A kill read from the log hours after it happened says so, with the kill's own time."""
    old = kill_incident(ago_s=3 * 86400)
    out = shown(ConsoleNotifier(io.StringIO(), style="terminal", colour=False), old)
    head = out.splitlines()[0]
    kill_time = dt.datetime.fromtimestamp(old.detected_at - 3 * 86400)
    assert head.startswith(kill_time.strftime("%b %d %H:%M:%S") + " (earlier, from the log) ")
    piped = shown(ConsoleNotifier(io.StringIO(), style="line"), old)
    assert piped.startswith(kill_time.astimezone().isoformat(timespec="seconds"))
    assert "; read from the log at " in piped


def test_piped_is_one_plain_line_per_incident() -> None:
    """Not a terminal: one line each, no colour, the key last; a repeat names the first."""
    first, again = kill_incident(), kill_incident(pid=10524)
    out = shown(ConsoleNotifier(io.StringIO()), first, again)  # a StringIO is not a tty
    lines = out.splitlines()
    assert len(lines) == 2
    assert ESC not in out
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d node-3 OOM kill: ", lines[0])
    assert "limit 48.0 MiB of /shop-api" in lines[0]
    assert lines[0].endswith(f"; key {first.key}]")
    assert "; same as " in lines[1]
    assert "; same as " not in lines[0]


@pytest.mark.fault
def test_hostile_process_name_stays_on_its_line_and_cannot_colour() -> None:
    """A comm with a newline and an escape sequence is shown escaped, in both styles."""
    evil = kill_incident(comm="x\n\x1b[2Jboom")
    for style in ("terminal", "line"):
        out = shown(ConsoleNotifier(io.StringIO(), style=style, colour=False), evil)
        assert "\x1b[2J" not in out
        assert "x\\x0a\\x1b[2Jboom" in out
        assert "boom (pid 10523)" in out.splitlines()[0]


def test_json_style_is_one_object_per_incident() -> None:
    """OOMWATCH_LOG_FORMAT=json: each incident is one JSON object with the whole payload."""
    inc = kill_incident()
    out = shown(ConsoleNotifier(io.StringIO(), style="json"), inc)
    (line,) = out.splitlines()
    record = json.loads(line)
    assert record["logger"] == "oomwatch.incident"
    assert record["level"] == "WARNING"
    assert record["message"] == inc.title
    assert record["incident"]["key"] == inc.key
    assert record["incident"]["incident"]["victim"]["pid"] == 10523
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}$", record["time"])


def test_first_start_summary_lists_the_earlier_kills_once() -> None:
    """The summary of kills before the start: its title once, then the kills, then a count."""
    kills = [kill_incident(pid=100 + i, ago_s=3600).kill for i in range(12)]
    builder = IncidentBuilder(this_node("boot", "node-3"), PidCache())
    summary = builder.backlog([k.kill for k in kills if k is not None], 12, None)
    out = shown(ConsoleNotifier(io.StringIO(), style="terminal", colour=False), summary)
    lines = out.splitlines()
    assert out.count(summary.title) == 1
    assert "earlier kills" in lines[0]
    listed = [line for line in lines if "(pid 1" in line]
    assert len(listed) == 10
    assert "  … and 2 more" in lines
