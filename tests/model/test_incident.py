"""The one JSON form of incidents: version 1 of the payload, and back to the same incident."""

from __future__ import annotations

import json
from typing import Any

from oomwatch.incidents.builder import IncidentBuilder
from oomwatch.kernel.scan import LogScanner
from oomwatch.model import CgroupMem, Incident, NodeInfo, ProcInfo, Snapshot
from oomwatch.notify.sample import REPORT
from oomwatch.sampling.sampler import PidCache
from tests.conftest import DATA

CGROUP = (
    "/kubepods.slice/kubepods-burstable.slice/"
    "kubepods-burstable-pod5931aa75_4603_4e65_b552_7c71cf55cfb5.slice"
)


def kills() -> dict[str, Incident]:
    """The sample kill without and with a memory snapshot, built as the agent builds them."""
    (kill,) = LogScanner().scan_lines(REPORT.splitlines())
    b = IncidentBuilder(NodeInfo("node-1", "6.1.0-test", "boot-1"), PidCache())
    out = {"kill_nosnap": b.kill(kill)}
    top = ProcInfo(7, 1, "nginx", ("nginx", "-g"), 0, "root", "/x", 55)
    b.snapshot = Snapshot(
        100.0, 1000, 500, 10, 5, 1.0, 0.5, 3, (CgroupMem(CGROUP, 100, 200, 1),), (top,), 1
    )
    out["kill_snap"] = b.kill(kill)
    return out


def missing_or_changed(old: Any, new: Any, path: str = "") -> list[str]:
    """Every name of `old` that `new` lacks or holds another value for."""
    if not isinstance(old, dict):
        return [] if old == new else [path]
    bad = []
    for k, v in old.items():
        if k not in new:
            bad.append(f"{path}.{k} missing")
        else:
            bad += missing_or_changed(v, new[k], f"{path}.{k}")
    return bad


def test_kill_payload_keeps_every_field_of_version_1() -> None:
    """The payload of the code before the redesign (saved) is inside today's, value for value."""
    golden = json.loads((DATA / "kill-payload-v1.json").read_text())
    now = {k: inc.to_json() for k, inc in kills().items()}
    for case in now.values():
        assert case["version"] == 1
        case["incident"].pop("detected_at")
        case.pop("detected_at")
    assert missing_or_changed(golden, now) == []


def test_from_json_gives_back_the_same_incident() -> None:
    """to_json then from_json is the identity, for kills and conditions alike."""
    from oomwatch.testing import make_incident

    cases = [*kills().values(), make_incident(3, kind="memory_low", severity="warning")]
    b = IncidentBuilder(NodeInfo("node-1", "k", "b"), PidCache())
    cases += [b.gap("kmsg", 3, "c"), b.unseen(2, "/proc/vmstat oom_kill", "/cg", 9)]
    for inc in cases:
        back = Incident.from_json(json.loads(json.dumps(inc.to_json())))
        assert back.to_json() == inc.to_json()
        assert (back.category, back.kind, back.unplaced) == (inc.category, inc.kind, inc.unplaced)


def test_the_json_text_is_the_payload_s_json_and_replace_makes_it_again() -> None:
    """`json_text` (the body made once) is byte for byte `to_json()` as JSON, for every shape."""
    from dataclasses import replace

    from oomwatch.delivery.grouping import followup
    from oomwatch.model.plain import compact

    base = kills()["kill_snap"]
    shapes = [
        *kills().values(),
        replace(base, drill=True),
        followup(base, [1, 2], ["kill:a", "kill:b"], "webhook", 20.0),
    ]
    for inc in shapes:
        assert inc.body_text() == compact(inc.body())
        assert inc.json_text() == compact(inc.to_json())
        assert json.loads(inc.json_text()) == inc.to_json()
    # a replaced incident's text is made anew from its own facts, never the old one's
    changed = replace(base, detected_at=base.detected_at + 60)
    assert base.body_text() != changed.body_text()
    assert changed.json_text() == compact(changed.to_json())
