"""The crash torture of `bench/crash.py`, short: real kills, kill -9s, three receivers.

Root only (memory cgroups, /dev/kmsg). 30 kills and 4 crashes at random moments
(the seed is printed on failure): nothing is missing anywhere, Slack shows no
message twice, and a webhook repeat always carries its first Idempotency-Key.
"""

from __future__ import annotations

import random

import pytest
from bench.crash import report, run

from tests.conftest import real_kernel_reason

pytestmark = pytest.mark.skipif(real_kernel_reason() is not None, reason=real_kernel_reason() or "")


def test_kills_survive_random_crashes_once_in_effect() -> None:
    """0 missing at every receiver, no Slack message twice, 0 webhook repeats with a new key."""
    seed = random.randrange(1 << 30)
    r = run(kills=30, crashes=4, seed=seed)
    shown = f"seed {seed}\n{report(r)}"
    assert r.kills >= 25, shown  # the kernel killed the storm's workers
    for name, t in r.tallies.items():
        assert t["missing"] == 0, f"{name}\n{shown}"
    # no Slack message is posted twice; a kill told of in two follow-ups (seen in 2 of
    # about 12 full runs of bench/crash.py) is an open defect, measured there, not here
    assert r.slack_keys_twice == 0, shown
    assert r.tallies["webhook"]["new_key"] == 0, shown
    assert r.tallies["pagerduty"]["new_key"] == 0, shown
