"""The shipped Prometheus rules: valid for the real promtool, firing on the series they should."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from oomwatch.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "helm" / "oomwatch" / "files" / "oomwatch-rules.yaml"
RULE_TESTS = ROOT / "tests" / "data" / "prometheus" / "oomwatch-rules.test.yaml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real promtool, or skip when this machine has none."""
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("needs promtool (Debian's prometheus package; .ci/run installs it)")
    return subprocess.run([tool, *args], capture_output=True, text=True, check=False)


def test_rules_pass_promtool_check() -> None:
    """`promtool check rules` accepts the file."""
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 7 rules found" in done.stdout


def test_rules_fire_as_their_unit_tests_say() -> None:
    """`promtool test rules`: each alert fires, resolves and stays quiet on written series."""
    done = promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_rules_name_only_metrics_the_agent_exports() -> None:
    """A renamed metric breaks this test, not a user's alert."""
    m = Metrics()
    m.workloads.count(None, "/x")
    exported = {
        s.name
        for f in text_string_to_metric_families(generate_latest(m.registry).decode())
        for s in f.samples
    }
    for f in m.registry.collect():  # families with labels have no sample until one is set
        exported.add(f.name + "_total" if f.type == "counter" else f.name)
    named = set(re.findall(r"\boomwatch_[a-z_]+", RULES.read_text()))
    assert named, "the rules name oomwatch metrics"
    assert named <= exported, named - exported
