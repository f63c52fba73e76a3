"""A realistic sample incident (for `oomwatch test-notify`), built from a real report."""

from __future__ import annotations

import time
from dataclasses import replace

from oomwatch.enrich.host import this_node
from oomwatch.incidents.builder import IncidentBuilder
from oomwatch.kernel.scan import LogScanner
from oomwatch.model import Incident
from oomwatch.sampling.sampler import PidCache

# A containerd pod's kill on cgroup v2 (kernel 5.15), trimmed to the lines that matter.
REPORT = """\
[ 8523.347168] stress-ng-vm invoked oom-killer: gfp_mask=0x1100cca(GFP_HIGHUSER_MOVABLE), \
order=0, oom_score_adj=1000
[ 8523.347282] memory: usage 102400kB, limit 102400kB, failcnt 6402
[ 8523.347301] Tasks state (memory values in pages):
[ 8523.347302] [  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name
[ 8523.347307] [ 181537]     0 181537     2847     1835    57344        0           988 nginx
[ 8523.347321] [ 183960]     0 183960    74798    23376   487424        0          1000 \
stress-ng-vm
[ 8523.347322] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,\
oom_memcg=/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-\
pod5931aa75_4603_4e65_b552_7c71cf55cfb5.slice,task_memcg=/kubepods.slice/kubepods-burstable.slice/\
kubepods-burstable-pod5931aa75_4603_4e65_b552_7c71cf55cfb5.slice/cri-containerd-\
25a38b5b8d556d7983d975577f5ac75ebbcfb4b269e6deaa0a0440c1ffc969ca.scope,task=stress-ng-vm,\
pid=183960,uid=0
[ 8523.347333] Memory cgroup out of memory: Killed process 183960 (stress-ng-vm) \
total-vm:299192kB, anon-rss:93176kB, file-rss:316kB, shmem-rss:12kB, UID:0 pgtables:476kB \
oom_score_adj:1000
"""


def kmsg_records() -> list[bytes]:
    """`REPORT` as /dev/kmsg gives it to the agent: one record a line."""
    out = []
    for seq, line in enumerate(REPORT.splitlines()):
        stamp, _, text = line[1:].partition("] ")
        out.append(f"6,{seq},{round(float(stamp) * 1e6)},-;{text}".encode())
    return out


def sample_incident(hostname: str | None = None, *, drill: bool = False) -> Incident:
    """The incident a real kill would give, marked as a test in its title and id."""
    (kill,) = LogScanner().scan_lines(REPORT.splitlines())
    inc = IncidentBuilder(this_node("test-notify", hostname), PidCache()).kill(kill, drill=drill)
    return replace(inc, id=f"test:{int(time.time())}", title=f"[test] {inc.title}")
